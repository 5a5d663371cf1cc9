"""scripts/recipe.py's pieces: the split, the held-out file, the accounting, the report, the CLI's
refusals, and (with PyTorch) the exact evaluation. No corpus files needed; the training loops are
exercised by running the script (see its docstring), which takes minutes, not seconds."""

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from charlstm.data.streams import make_streams

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "recipe.py"
spec = importlib.util.spec_from_file_location("recipe_script", SCRIPT)
recipe = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = recipe        # dataclasses look their module up there
spec.loader.exec_module(recipe)

# graphemes of several code points (an accent, a flag, CR LF) near every possible boundary
TEXT = "".join(f"line {k}: cafe\u0301 \U0001F1FA\U0001F1F8 {'é' * (k % 3)}\r\n" for k in range(60))


def test_split_is_charlstms_last_fraction(tmp_path):
    data = recipe.split_corpus(TEXT, 0.1)
    n = len(data.ids)
    assert len(data.heldout_ids) == int(n * 0.1)
    assert np.array_equal(np.concatenate([data.train_ids, data.heldout_ids]), data.ids)
    assert data.vocab.decode(data.ids) == TEXT
    path = tmp_path / "heldout.txt"
    recipe.write_heldout(path, data.vocab, data.heldout_ids)          # checks the read-back itself
    assert path.read_bytes() == data.vocab.decode(data.heldout_ids).encode("utf-8")   # CR LF kept


def test_trained_chars_counts_the_short_last_chunk():
    ids = np.arange(1000) % 7
    streams = make_streams(ids, 3, 10)
    for steps in (1, streams.chunks_per_pass, 2 * streams.chunks_per_pass + 5):
        expected = 0
        for s in range(steps):
            _, targets, weights = streams.chunk(s % streams.chunks_per_pass)
            expected += targets.size if weights is None else int(weights.sum())
        assert recipe.trained_chars(streams, steps) == expected


def test_svg_is_well_formed_with_a_line_per_side():
    svg = recipe.svg_curves({"charlstm": [(10, 2.5), (20, 2.0)], "torch-plain": [(12, 2.6)],
                             "a <b> & c": [(5, 3.0), (25, 1.9)]}, title="x & <y>",
                             exact={"charlstm": (20, 1.98)})
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2                     # a one-point series is a dot
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "charlstm" in texts and "plain torch" in texts and "a <b> & c" in texts


def test_table_and_report():
    side = {"exact_nats": 1.6, "exact_bits": 2.3, "steps": 10, "best_step": 10, "chars_per_s": 12345.0,
            "eval_s": 1.0, "elapsed_s": 5.0, "curve": [[5.0, 10, 1.7]], "started_at": "now"}
    results = {"max_time": 5, "val_fraction": 0.1, "seed": 0, "started": "now",
               "machine": {"platform": "p", "cpus": 2},
               "corpora": [{"name": "c", "path": "c.txt", "symbols": 1000, "distinct": 9, "train_symbols": 900,
                            "heldout_symbols": 100,
                            "sides": {"charlstm": dict(side, exact_nats=1.5),
                                      "torch-recipe": side, "torch-plain": dict(side, exact_nats=1.7)}}]}
    table = recipe.markdown_table(results)
    assert "| c | 1,000 (9 distinct) | 1.500 (12,345 chars/s) | 1.600 (12,345 chars/s) |" in table
    assert table.splitlines()[-1].endswith("| +0.100 |")
    page = recipe.render_report(results)
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    ET.fromstring(svg)


def test_missing_corpus_is_one_line_and_exit_2(tmp_path, capsys):
    assert recipe.main([str(tmp_path / "nope.txt"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.txt" in err
    assert not (tmp_path / "out").exists()


def test_corpus_names():
    assert recipe.parse_corpus("tweets=some/dir/t.txt").name == "tweets"
    assert recipe.parse_corpus("some/dir/t.txt").name == "t"


def test_exact_torch_pass_is_every_symbol_from_all_before_it():
    torch = pytest.importorskip("torch")
    r = recipe.TorchRecipe("t", True, 8, 2, 0.0, 2, 5, 1e-2, "cosine", 0.1, 0, 0.97, 1000, 5.0)
    torch.manual_seed(0)
    model = recipe.make_torch_model(r, 6)
    ids = (np.arange(700) * 5 % 6).astype(np.uint8)
    nats, n = recipe.torch_loss_over(model, ids, 1, 256)
    assert n == len(ids) - 1
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(ids.astype(np.int64))
        logits, _ = model(x[:-1, None])
        whole = torch.nn.functional.cross_entropy(logits[:, 0].double(), x[1:]).item()
    assert nats == pytest.approx(whole, rel=1e-5)

