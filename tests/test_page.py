"""The browser page (charlstm/export/page.py, quantize.py and `charlstm export`).

As files: the page is self-contained and embeds the weights exactly (float32) or within the
precision's bound (float16, int8); bad inputs are one CharlstmError; the export is atomic.

In headless Chromium (skipped when it is not installed: `apt-get install chromium`; CI installs
it), through the page's self-test (its URL's hash, see export/page/ui.js), for every cell in
charlstm.nn.cells.CELLS: the next-symbol probabilities of a text read with teacher forcing equal Python's to 1e-4 at every
position, with both kernels; greedy text of 500 symbols equals model.sample's; sampled text equals
Python's generate given the page's uniform numbers; the controls generate what the API does; an
unknown symbol in the prime shows a message; and a screenshot is taken.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm.cli import main
from charlstm.data.vocab import Vocab, build_vocab
from charlstm.decoding.sampling import filter_probs, generate
from charlstm.errors import CharlstmError
from charlstm.export.page import PAGE_CELLS, export_page, render_generator
from charlstm.export.quantize import PRECISIONS, dequantized, loss_effect, quantize
from charlstm.model import ModelConfig, as_one_hot, forward, param_shapes, zero_state
from charlstm.nn.cells import CELLS
from charlstm.training.checkpoint import save_checkpoint
from charlstm.training.loop import TrainConfig, train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                    "(apt-get install chromium), so the page is not run")
TEXT = ("def add(a, b):\n    return a + b  # the sum\n\nclass Point:\n    x = 0\n"
        "print(add(1, 2), 'café', \"naïve\")\n") * 6
# Every cell with an input embedding (the page gets its one-hot form: model.as_one_hot), and the
# one-hot input of models trained before embeddings, as "cell/one-hot".
ALL_CELLS = sorted(CELLS) + [f"{name}/one-hot" for name in sorted(CELLS)]


def test_the_page_runs_every_registered_cell():
    """A new cell needs its step in export/page/generator.js too: this names the one missing."""
    assert set(CELLS) <= set(PAGE_CELLS), set(CELLS) - set(PAGE_CELLS)


# --- models: a few training steps of every registered cell ----------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: Model}: each registered cell trained a few steps, with an embedding and one-hot."""
    out = {}
    for name in ALL_CELLS:
        config = TrainConfig(batch_size=8, seq_length=32, max_steps=40, eval_every=40, lr=0.02,
                             sample_length=0, seed=1)
        cell, _, one_hot = name.partition("/")
        r = train(text=TEXT, out_dir=tmp_path_factory.mktemp(cell), config=config,
                  model_options={"cell": cell, "hidden_size": 24, "num_layers": 2, "dropout": 0.0,
                                 "embedding_size": 0 if one_hot else 8}, progress=False)
        out[name] = charlstm.Model(r.params, r.config, r.vocab)
    return out


@pytest.fixture
def model_of(models):
    """model_of(cell) -> (Model, probabilities function, greedy function) for that cell."""
    def get(name):
        m = models[name]
        return m, lambda text: python_probs(m, text), lambda n, prime: m.sample(n, temperature=0, prime=prime)
    return get


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def python_probs(model, text):
    ids = model.vocab.encode(text).astype(np.intp)[:, None]
    logits, _, _ = forward(model.params, model.config, ids, zero_state(model.config, 1))
    return softmax(logits)


# --- the page as a file -----------------------------------------------------------------------------

def page_json(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="charlstm-model">(.*?)</script>',
                                page, re.S).group(1))


def decode(entry) -> np.ndarray:
    import base64
    raw = base64.b64decode(entry["data"])
    a = np.frombuffer(raw, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])
    if entry["dtype"] == "int8":
        scale = np.frombuffer(base64.b64decode(entry["scale"]), dtype="<f4")
        return a.astype(np.float32) * scale.reshape(-1, *([1] * (a.ndim - 1)))
    return a.astype(np.float32)


def test_page_is_self_contained_and_embeds_the_model(models):
    m = models["lstm"]
    page = render_generator(m, bits_per_char=1.2345, title="a <test>")
    assert page.startswith("<!DOCTYPE html>") and "<title>a &lt;test&gt;</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page and "fetch(" not in page
    assert "/*%" not in page and "%DATA%" not in page                        # every slot filled
    assert "2 × 24 LSTM" in page and "validation 1.234 bits/char" in page    # says what it holds
    data = page_json(page)
    assert data["config"] == {"cell": "lstm", "num_layers": 2, "hidden_size": 24, "vocab_size": len(m.vocab)}
    assert data["vocab"]["symbols"] == list(m.vocab.symbols) and data["bits_per_char"] == 1.2345
    # an embedded model goes as its one-hot form: layer 0's rows are the input table
    params, config = as_one_hot(m.params, m.config)
    assert m.config.embedding_size and not config.embedding_size
    assert [p["key"] for p in data["params"]] == list(param_shapes(config))
    for entry in data["params"]:
        assert entry["dtype"] == "float32"
        np.testing.assert_array_equal(decode(entry), params[entry["key"]])     # exactly the weights
    one_hot = models["lstm/one-hot"]
    assert [p["key"] for p in page_json(render_generator(one_hot))["params"]] == list(param_shapes(one_hot.config))


def test_precisions_shrink_the_page_within_their_error_bound(models):
    m = models["lstm"]
    sizes = {p: len(render_generator(m, precision=p)) for p in PRECISIONS}
    params, _ = as_one_hot(m.params, m.config)          # what the page holds
    weights = sum(w.size for w in params.values())
    assert sizes["float32"] - sizes["float16"] > 0.9 * weights * 2 * 4 / 3    # 2 bytes a weight less, base64
    assert sizes["float16"] - sizes["int8"] > 0.9 * weights * 1 * 4 / 3
    for precision in ("float16", "int8"):
        data = page_json(render_generator(m, precision=precision))
        values = dequantized(params, precision)
        for entry in data["params"]:
            w, got = params[entry["key"]], decode(entry)
            np.testing.assert_array_equal(got, values[entry["key"]])           # the numbers Python evaluates
            if w.ndim == 1:
                assert entry["dtype"] == "float32" and np.array_equal(got, w)  # vectors stay float32
            elif precision == "float16":
                assert entry["dtype"] == "float16" and np.allclose(got, w, rtol=1e-3, atol=1e-7)
            else:
                bound = np.abs(w).max(axis=1, keepdims=True) / 254 * (1 + 1e-6)
                assert entry["dtype"] == "int8" and (np.abs(got - w) <= bound).all()


def test_every_page_asset_ships_with_the_package():
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["charlstm.export"]
    assets = [p.relative_to(root / "charlstm" / "export") for p in (root / "charlstm" / "export" / "page").iterdir()]
    assert assets and all(any(a.match(g) for g in globs) for a in assets)
    assert not (root / "charlstm" / "export" / "page" / "__init__.py").exists()   # data, not a package


def test_int8_keeps_a_zero_row_zero_and_float16_refuses_what_it_cannot_hold():
    w = np.array([[0.0, 0.0, 0.0], [1.0, -0.5, 0.25]], dtype=np.float32)
    q = quantize(w, "int8")
    assert q.data.dtype == np.int8 and np.array_equal(q.values[0], [0, 0, 0])
    assert list(q.data[1]) == [127, -64, 32] and np.array_equal(q.values[1], np.float32(1 / 127) * q.data[1])
    with pytest.raises(CharlstmError, match="does not fit float16"):
        quantize(np.array([[1e5, 0.0]], dtype=np.float32), "float16")


def test_the_loss_effect_of_lower_precisions_is_small(models):
    m = models["lstm"]
    ids = m.vocab.encode(TEXT)
    assert loss_effect(m.params, m.config, ids, "float32")["increase"] == 0
    f16, i8 = (loss_effect(m.params, m.config, ids, p) for p in ("float16", "int8"))
    assert f16["symbols"] == len(ids) - 1 and f16["float32"] == i8["float32"]
    assert abs(f16["increase"]) < 1e-3 and abs(i8["increase"]) < 0.05


def test_bad_inputs_are_one_error(models, tmp_path, monkeypatch):
    m = models["lstm"]
    with pytest.raises(CharlstmError, match="unknown precision 'int4': use one of float32, float16, int8"):
        render_generator(m, precision="int4")
    broken = charlstm.Model({**m.params, "head.b": m.params["head.b"][:-1]}, m.config, m.vocab)
    with pytest.raises(CharlstmError, match=r"head.b is \(\d+,\), expected"):
        render_generator(broken)
    monkeypatch.setitem(CELLS, "mystery", dataclasses.replace(CELLS["lstm"], name="mystery"))
    config = ModelConfig(vocab_size=len(m.vocab), hidden_size=4, num_layers=1, cell="mystery")
    with pytest.raises(CharlstmError, match="cannot run a mystery cell"):
        render_generator(charlstm.Model({}, config, m.vocab))
    with pytest.raises(CharlstmError, match="cannot write"):
        export_page(m, tmp_path / "no" / "such" / "dir" / "page.html")


def test_export_replaces_the_file_whole_and_leaves_no_temporary(models, tmp_path):
    m = models["lstm"]
    path = tmp_path / "page.html"
    path.write_text("old")
    size = export_page(m, path, "int8")
    assert path.stat().st_size == size and page_json(path.read_text())["precision"] == "int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]
    assert path.stat().st_mode & 0o444 == 0o444 & ~_umask()            # readable like any written file
    if os.geteuid() != 0:                                          # root writes into read-only folders
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(CharlstmError, match="cannot write"):
                export_page(m, path)
        finally:
            tmp_path.chmod(0o700)
        assert page_json(path.read_text())["precision"] == "int8"


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


# --- the command ----------------------------------------------------------------------------------

@pytest.fixture
def checkpoint(models, tmp_path):
    m = models["lstm"]
    path = tmp_path / "m.npz"
    save_checkpoint(path, m.params, m.config, m.vocab, train={"progress": {"best_val": 1.5}})
    return path


def test_export_command_writes_the_page_and_reports_the_loss_effect(checkpoint, tmp_path):
    corpus = tmp_path / "held-in.txt"
    corpus.write_text(TEXT)
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "p.html"), "--precision", "int8",
                                  "--eval-text", str(corpus)])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and "p.html" in lines[0] and "int8 weights" in lines[0]
    assert re.match(r"int8 weights: \d\.\d{4} -> \d\.\d{4} bits/char \([+-]\d\.\d{5}\) on \d+ symbols of ", lines[1])
    data = page_json((tmp_path / "p.html").read_text())
    assert data["precision"] == "int8" and data["bits_per_char"] == round(1.5 / np.log(2), 4)
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "q.html")])   # float32: no measure
    assert r.exit_code == 0 and len(r.stderr.splitlines()) == 1
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "s.html"), "--precision", "float16"])
    assert r.exit_code == 0 and "a sample of the model itself" in r.stderr


def test_the_export_is_one_call_a_notebook_can_make(checkpoint, models, tmp_path):
    """charlstm.export_model returns what `charlstm export` prints, from a checkpoint (whose page
    shows its validation loss) or from a Model."""
    import charlstm
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "cli.html"), "--precision", "int8",
                                  "--title", "t"])
    lines = charlstm.export_model(checkpoint, tmp_path / "api.html", precision="int8", title="t")
    assert [line.replace("api.html", "cli.html") for line in lines] == r.stderr.splitlines()
    assert (tmp_path / "api.html").read_bytes() == (tmp_path / "cli.html").read_bytes()
    lines = charlstm.export_model(charlstm.load(checkpoint), tmp_path / "model.page", format="html")
    assert len(lines) == 1 and "validation" not in lines[0]
    with pytest.raises(charlstm.CharlstmError, match="--title: not used by --format onnx"):
        charlstm.export_model(checkpoint, tmp_path / "m.onnx", title="t")


@pytest.mark.parametrize("args, message", [
    (["--precision", "int4"], "unknown precision 'int4'"),
    (["--format", "tflite"], "unknown format 'tflite': use one of html"),
])
def test_export_command_bad_options(checkpoint, tmp_path, args, message):
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "p.html"), *args])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and message in r.stderr
    assert not (tmp_path / "p.html").exists()


def test_export_command_bad_files(checkpoint, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    r = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "p.html")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "not a charlstm checkpoint" in r.stderr
    r = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "missing" / "p.html")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr


# --- the page in a browser ----------------------------------------------------------------------------

def run_page(path: Path, fragment: str, budget_ms: int = 120_000) -> dict:
    """Open the page at #fragment headless and return what its self-test reported."""
    out = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", f"--virtual-time-budget={budget_ms}",
                          "--dump-dom", path.resolve().as_uri() + "#" + fragment],
                         capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="test-result"[^>]*>(.*?)</pre>', out.stdout, re.S)
    assert found and found.group(1), f"the page reported nothing; stderr: {out.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert "error" not in result, result["error"]
    return result


def query(**values) -> str:
    return "&".join(f"{k}={quote(str(v), safe='')}" for k, v in values.items() if v is not None)


@needs_chromium
@pytest.mark.parametrize("kernel", ["wasm", "js"])
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_page_probabilities_equal_pythons(model_of, tmp_path, cell, kernel):
    model, probs, _ = model_of(cell)
    text = TEXT[:150]
    export_page(model, tmp_path / "page.html")
    got = run_page(tmp_path / "page.html", query(test="probs", text=text, kernel=kernel))
    assert got["kernel"] == kernel
    expected = probs(text)
    assert np.array(got["probs"]).shape == expected.shape
    assert np.abs(np.array(got["probs"]) - expected).max() < 1e-4


@needs_chromium
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_page_greedy_text_equals_pythons(model_of, tmp_path, cell):
    model, _, greedy = model_of(cell)
    export_page(model, tmp_path / "page.html")
    for prime in ("def ", ""):
        got = run_page(tmp_path / "page.html", query(test="generate", prime=prime, length=500, temperature=0))
        assert got["text"] == greedy(500, prime)


@needs_chromium
def test_page_never_writes_the_unknown_symbol(tmp_path):
    vocab = build_vocab(TEXT + "~", min_count=2)                  # "~" is rare: the vocabulary gets U+FFFD
    model = charlstm.Model.create(vocab, hidden_size=16, num_layers=2, seed=5)
    model.params["head.b"][vocab.unk] = 4.0                       # and the model likes it best
    export_page(model, tmp_path / "page.html")
    for temperature in (0, 1.5):
        got = run_page(tmp_path / "page.html", query(test="generate", length=300, temperature=temperature, seed=9))
        assert "\ufffd" not in got["text"] and len(got["text"]) == 300
    assert got["text"] == "".join(p[0] for p, _ in generate(model.params, model.config, vocab, PageRandom(9),
                                                            length=300, temperature=1.5))


class PageRandom:
    """The page's seeded generator (generator.js: sfc32 seeded by splitmix32), as a NumPy-like
    rng for decoding/sampling.py's generate, which only calls rng.random(shape)."""

    M = 0xFFFFFFFF

    def __init__(self, seed: int):
        self.x, y = seed & self.M, (seed >> 32) & self.M
        self.a, self.b, self.c, self.d = self._mix(), self._mix() ^ y, self._mix(), self._mix()
        for _ in range(12):
            self._next()

    def _mix(self):
        M = self.M
        self.x = (self.x + 0x9E3779B9) & M
        z = self.x ^ (self.x >> 16)
        z = (z * 0x21F0AAAD) & M
        z ^= z >> 15
        z = (z * 0x735A2D97) & M
        return z ^ (z >> 15)

    def _next(self):
        M = self.M
        t = (self.a + self.b + self.d) & M
        self.d = (self.d + 1) & M
        self.a = self.b ^ (self.b >> 9)
        self.b = (self.c + (self.c << 3)) & M
        self.c = ((self.c << 21) | (self.c >> 11)) & M
        self.c = (self.c + t) & M
        return t / 4294967296

    def random(self, shape):
        return np.array([self._next() for _ in range(int(np.prod(shape)))]).reshape(shape)


@needs_chromium
@pytest.mark.parametrize("settings", [
    dict(temperature=1.0, seed=1),
    dict(temperature=0.8, top_k=5, seed=2, prime="class "),
    dict(temperature=1.2, top_p=0.9, seed=3, stop="\n\n"),
    dict(temperature=0.9, top_k=12, top_p=0.8, seed=2 ** 40 + 5, stop="):"),
])
def test_page_samples_what_python_samples_with_the_same_uniforms(models, tmp_path, settings):
    m = models["lstm"]
    export_page(m, tmp_path / "page.html")
    prime, seed, stop = settings.get("prime", ""), settings["seed"], settings.get("stop")
    pieces = generate(m.params, m.config, m.vocab, PageRandom(seed), length=300, prime=prime, stop=stop,
                      temperature=settings["temperature"], top_k=settings.get("top_k"), top_p=settings.get("top_p"))
    expected = "".join(p[0] for p, _ in pieces)
    got = run_page(tmp_path / "page.html", query(test="generate", prime=prime, length=300, seed=seed, stop=stop,
                                                 temperature=settings["temperature"], topK=settings.get("top_k"),
                                                 topP=settings.get("top_p")))
    assert got["text"] == expected


@needs_chromium
def test_page_filter_equals_filter_probs(models, tmp_path):
    symbols = "abcdefgh"
    vocab = Vocab(tuple(symbols[:-1]) + ("\ufffd",), unk=7)
    model = charlstm.Model.create(vocab, hidden_size=4, num_layers=1)
    export_page(model, tmp_path / "page.html")
    logits = [2.0, 1.0, 1.0, 0.5, -1.0, 3.0, 0.5, 9.0]          # ties, and the unknown symbol the most likely
    for temperature, top_k, top_p in [(1.0, None, None), (0.0, None, None), (0.7, 3, None), (1.0, 2, None),
                                      (1.3, None, 0.5), (1.0, 4, 0.9), (0.5, None, 0.999)]:
        got = run_page(tmp_path / "page.html", query(test="filter", logits=json.dumps(logits), temperature=temperature,
                                                     topK=top_k, topP=top_p))
        expected = filter_probs(np.array([logits], dtype=np.float32), temperature, top_k, top_p, banned=7)[0]
        np.testing.assert_allclose(got["probs"], expected, rtol=1e-12, atol=1e-15)
        assert got["probs"][7] == 0


@needs_chromium
@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_a_quantized_page_computes_with_the_dequantized_weights(models, tmp_path, precision):
    m = models["lstm"]
    export_page(m, tmp_path / "page.html", precision)
    got = run_page(tmp_path / "page.html", query(test="probs", text=TEXT[:100]))
    params, config = as_one_hot(m.params, m.config)          # what the page holds, then quantized
    low = charlstm.Model(dequantized(params, precision), config, m.vocab)
    assert np.abs(np.array(got["probs"]) - python_probs(low, TEXT[:100])).max() < 1e-4
    greedy = run_page(tmp_path / "page.html", query(test="generate", prime="def ", length=300, temperature=0))
    assert greedy["text"] == low.sample(300, temperature=0, prime="def ")


@needs_chromium
def test_the_controls_generate_and_show_the_candidates(models, tmp_path):
    m = models["lstm"]
    export_page(m, tmp_path / "page.html")
    got = run_page(tmp_path / "page.html", query(test="ui", prime="class P", temperature=0, length=80, seed=4))
    expected = m.sample(80, temperature=0, prime="class P")
    assert got["state"] == "done" and got["message"] == ""
    assert got["prime"] == "class P" and got["output"] == expected
    assert "80 symbols" in got["status"] and "seed 4" in got["status"]
    assert got["context"] == "after \u201c\u2026" + expected[-24:].replace("\n", "\u21b5") + "\u201d"
    after = python_probs(m, expected)[-1]                      # what the model expects after all of it
    top = np.argsort(-after, kind="stable")[:10]
    assert [c["symbol"] for c in got["candidates"]] == [m.vocab.symbols[k] for k in top]
    assert np.allclose([c["p"] for c in got["candidates"]], after[top], atol=1e-5)
    assert got["candidates"][0]["percent"] == f"{100 * after[top[0]]:.1f}%"
    stopped = run_page(tmp_path / "page.html", query(test="ui", prime="def", temperature=0.5, length=400, stop="\\n",
                                                     seed=1))
    assert stopped["state"] == "done" and "\n" not in stopped["generated"]


@needs_chromium
def test_the_stop_button_ends_a_generation(models, tmp_path):
    m = models["lstm"]
    export_page(m, tmp_path / "page.html")
    got = run_page(tmp_path / "page.html", query(test="ui", prime="def", temperature=0, length=200_000, stopAfter=1))
    assert got["state"] == "done" and 0 < len(got["generated"]) < 200_000
    assert m.sample(len(got["generated"]), temperature=0, prime="def") == got["output"]   # what it had, whole


@needs_chromium
@pytest.mark.parametrize("unit, prime, shown", [
    ("grapheme", "print('año')", "symbol 'ñ' (U+00F1)"),
    ("grapheme", "cafe\u0301 🇫🇷", "symbol '🇫🇷' (U+1F1EB)"),        # a flag is one grapheme, unknown whole
    ("codepoint", "x\u2028y", "symbol '\\u2028' (U+2028)"),
])
def test_an_unknown_symbol_in_the_prime_is_shown(tmp_path, unit, prime, shown):
    text = TEXT.replace("é", "e\u0301") if "\u0301" in prime else TEXT
    vocab = build_vocab(text, unit=unit)
    export_page(charlstm.Model.create(vocab, hidden_size=8, num_layers=1), tmp_path / "page.html")
    got = run_page(tmp_path / "page.html", query(test="ui", prime=prime, length=20))
    assert shown in got["message"] and "is not in the model's vocabulary" in got["message"]
    assert got["state"] == "error" and got["output"] == ""
    with pytest.raises(CharlstmError, match=re.escape(shown[shown.index("(U+"):])):    # the symbol Python names
        vocab.encode(prime)


@needs_chromium
def test_screenshot(models, tmp_path):
    export_page(models["lstm"], tmp_path / "page.html", title="charlstm · test")
    png = tmp_path / "page.png"
    subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                    "--virtual-time-budget=20000", "--window-size=1000,640", f"--screenshot={png}",
                    (tmp_path / "page.html").resolve().as_uri()], check=True, capture_output=True, timeout=120)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
