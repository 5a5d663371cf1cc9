"""charlstm.training.corpus and the loop on every kind of corpus: a data directory trains to the
same bits as the file it came from, a file over the in-memory limit is encoded into the run
directory once, resume from a data directory is bit-exact, a different corpus or different reading
options are refused on --resume with one line naming the difference, the periodic validation is
bounded by val_symbols, and eval is exact over a file of any size or a data directory."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charlstm import cli
from charlstm.api import Model, load
from charlstm.data.blocks import list_inputs
from charlstm.data.datadir import ReadOptions, open_data_dir
from charlstm.data.encode import encode_corpus
from charlstm.data.streams import spread_streams
from charlstm.errors import CharlstmError
from charlstm.training import corpus as corpus_module
from charlstm.training.checkpoint import load_checkpoint
from charlstm.training.evaluation import evaluate_blocks, evaluate_ids, validation_loss
from charlstm.training.loop import TrainConfig, train

MODEL = {"hidden_size": 8, "num_layers": 2, "dropout": 0.1}


def sentences(n_lines, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the cat", "a dog", "sees", "likes", "the moon", "caf\u00e9", "\U0001F44D\U0001F3FD", "na\u00efve"]
    return "".join(" ".join(rng.choice(words, 4)) + ".\r\n" for _ in range(n_lines))


def config(steps, **kw):
    # a constant rate: the cosine schedule's shape depends on max_steps, which a resumed run raises
    return TrainConfig(**{**dict(batch_size=4, seq_length=16, lr=1e-2, lr_schedule="constant", max_steps=steps,
                                 eval_every=4,
                                 val_fraction=0.1, sample_length=10, seed=1), **kw})


def params_equal(a, b):
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "chars_per_s")}
            for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(sentences(120), encoding="utf-8")
    encode_corpus(list_inputs([path]), tmp_path / "data", workers=1)
    return path


def test_a_data_directory_trains_to_the_same_bits_as_its_file(tmp_path, corpus):
    a = train(corpus, tmp_path / "a", config(8), model_options=MODEL)
    b = train(tmp_path / "data", tmp_path / "b", config(8), model_options=MODEL)
    params_equal(a.params, b.params)
    assert metrics(tmp_path / "a" / "metrics.jsonl") == metrics(tmp_path / "b" / "metrics.jsonl")
    record = load_checkpoint(tmp_path / "b" / "latest.npz").train["corpus"]
    assert record == load_checkpoint(tmp_path / "a" / "latest.npz").train["corpus"]
    assert record["bytes"] == corpus.stat().st_size and record["hash"].startswith("sha256:")


def test_resume_from_a_data_directory_is_bit_exact(tmp_path, corpus):
    whole = train(tmp_path / "data", tmp_path / "whole", config(12), model_options=MODEL)
    train(tmp_path / "data", tmp_path / "parts", config(8), model_options=MODEL)
    resumed = train(tmp_path / "data", tmp_path / "parts", config(12), resume=tmp_path / "parts" / "latest.npz")
    assert resumed.step == 12
    params_equal(whole.params, resumed.params)
    assert metrics(tmp_path / "whole" / "metrics.jsonl") == metrics(tmp_path / "parts" / "metrics.jsonl")
    # a run started on the file resumes on its data directory, and the other way round
    train(corpus, tmp_path / "mixed", config(8), model_options=MODEL)
    mixed = train(tmp_path / "data", tmp_path / "mixed", config(12), resume=tmp_path / "mixed" / "latest.npz")
    params_equal(whole.params, mixed.params)


def test_resume_refuses_another_corpus_naming_the_difference(tmp_path, corpus):
    train(corpus, tmp_path / "run", config(4), model_options=MODEL)
    latest = tmp_path / "run" / "latest.npz"
    other = tmp_path / "other.txt"
    other.write_text(sentences(120, seed=5), encoding="utf-8")
    with pytest.raises(CharlstmError, match=r"other\.txt: cannot resume .*latest\.npz: it is not the corpus the run was "
                                            r"trained on \([\d,]+ bytes, the run's [\d,]+\)"):
        train(other, tmp_path / "run", config(8), resume=latest)
    with pytest.raises(CharlstmError, match="read with --newline keep, this one with --newline normalize"):
        train(corpus, tmp_path / "run", config(8), resume=latest, newline="normalize")
    encode_corpus(list_inputs([corpus]), tmp_path / "codepoints", ReadOptions(unit="codepoint"), workers=1)
    with pytest.raises(CharlstmError, match="read with --unit grapheme, this one with --unit codepoint"):
        train(tmp_path / "codepoints", tmp_path / "run", config(8), resume=latest)
    assert load_checkpoint(latest).train["progress"]["step"] == 4           # nothing was touched


def test_the_cli_refuses_another_corpus_on_resume_in_one_line(tmp_path, corpus):
    args = ["train", str(corpus), "--out", str(tmp_path / "run"), "--quiet"]
    first = CliRunner().invoke(cli.main, args + ["--hidden", "8", "--layers", "1", "--batch-size", "4",
                                                 "--seq-length", "16", "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    corpus.write_text(sentences(120, seed=9), encoding="utf-8")
    result = CliRunner().invoke(cli.main, args + ["--resume", str(tmp_path / "run" / "latest.npz"), "--max-steps", "4"])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "is not the corpus the run was trained on" in result.stderr


def test_a_file_over_the_in_memory_limit_is_encoded_into_the_run_directory(tmp_path, corpus, monkeypatch):
    in_memory = train(corpus, tmp_path / "small", config(8), model_options=MODEL)
    monkeypatch.setattr(corpus_module, "IN_MEMORY_MAX_BYTES", 1000)
    lines = []

    class Messages:
        def start(self, total, done): pass
        def step(self, step, loss, chars_per_s): pass
        def message(self, line): lines.append(line)
        def close(self): pass

    big = train(corpus, tmp_path / "big", config(8), model_options=MODEL, progress=Messages())
    params_equal(in_memory.params, big.params)
    assert lines[0].startswith(f"{corpus} is ") and f"encoding it once into {tmp_path / 'big' / 'data'}" in lines[0]
    data = open_data_dir(tmp_path / "big" / "data")
    assert data.manifest["inputs"][0]["path"] == str(corpus.resolve())
    # --resume reads the same encoding back instead of encoding again, and stays bit-exact
    lines.clear()
    train(corpus, tmp_path / "parts", config(4), model_options=MODEL)
    import shutil
    shutil.rmtree(tmp_path / "parts" / "data")            # gone: encoded again
    resumed = train(corpus, tmp_path / "parts", config(8), resume=tmp_path / "parts" / "latest.npz",
                    progress=Messages())
    params_equal(in_memory.params, resumed.params)
    lines.clear()
    again = train(corpus, tmp_path / "parts", config(12), resume=tmp_path / "parts" / "latest.npz",
                  progress=Messages())
    assert again.step == 12 and "reading the ids an earlier start of this run encoded" in lines[0]


def test_a_large_file_needing_more_disk_than_is_free_is_refused_before_anything_is_written(tmp_path, corpus,
                                                                                          monkeypatch):
    import shutil
    monkeypatch.setattr(corpus_module, "IN_MEMORY_MAX_BYTES", 1000)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    with pytest.raises(CharlstmError, match=r"data: the encoded corpus needs [\d.]+ kB of disk space, and charlstm "
                                            r"keeps 16\.8 MB free beside it, but only 10\.0 kB are free"):
        train(corpus, tmp_path / "run", config(4), model_options=MODEL)
    assert not (tmp_path / "run").exists()


def test_reading_options_come_from_the_data_directory(tmp_path, corpus):
    encode_corpus(list_inputs([corpus]), tmp_path / "norm", ReadOptions(newline="normalize", min_count=2), workers=1)
    result = train(tmp_path / "norm", tmp_path / "run", config(2), model_options=MODEL)
    saved = load_checkpoint(tmp_path / "run" / "latest.npz").train
    assert saved["config"]["min_count"] == 2 and saved["corpus"]["newline"] == "normalize"
    assert "\r\n" not in result.vocab.symbols
    res = CliRunner().invoke(cli.main, ["train", str(tmp_path / "norm"), "--out", str(tmp_path / "r2"), "--quiet",
                                        "--newline", "keep", "--min-count", "3"])
    assert res.exit_code == 1
    assert res.stderr.splitlines() == ["charlstm: error: --min-count, --newline come from the data directory's "
                                       "manifest when training on a data directory; encode the corpus again to "
                                       "change them"]


# --- validation and evaluation ------------------------------------------------------------------

def test_periodic_validation_reads_at_most_val_symbols_spread_over_the_split():
    ids = np.arange(10_000) % 50
    streams = spread_streams(ids, 4, 16, 1000)
    assert list(streams.starts) == [0, 2500, 5000, 7500] and list(streams.lengths) == [250] * 4
    predicted = []
    for k in range(streams.chunks_per_pass):
        _, targets, weights = streams.chunk(k)
        predicted.append(targets.size if weights is None else int(weights.sum()))
    assert sum(predicted) == 1000
    # no more held out than that: exactly today's contiguous streams over all of it
    model = Model.create(__import__("charlstm").Vocab(tuple(chr(65 + k) for k in range(50))), 6, 1)
    whole = evaluate_ids(model.params, model.config, ids[:900], streams=4, seq_length=16)
    assert validation_loss(model.params, model.config, ids[:900], 4, 16, val_symbols=1000) == whole
    assert validation_loss(model.params, model.config, ids, 4, 16, val_symbols=0) == \
        evaluate_ids(model.params, model.config, ids, streams=4, seq_length=16)
    bounded, n = validation_loss(model.params, model.config, ids, 4, 16, val_symbols=1000)
    assert n == 1000


@pytest.mark.parametrize("cuts", [[1], [7, 300, 301], [255, 256, 257, 1000], [5000]])
def test_evaluating_block_by_block_is_exact(cuts):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 30, 3000)
    model = Model.create(__import__("charlstm").Vocab(tuple(chr(97 + k) for k in range(30))), 6, 2)
    blocks = np.split(ids, [c for c in cuts if c < len(ids)])
    assert evaluate_blocks(model.params, model.config, blocks, 256) == \
        evaluate_ids(model.params, model.config, ids, streams=1, seq_length=256)


def test_eval_of_a_data_directory_equals_eval_of_its_file(tmp_path, corpus):
    train(corpus, tmp_path / "run", config(4), model_options=MODEL)
    model = load(tmp_path / "run" / "latest.npz")
    expected = model.evaluate(corpus.read_bytes().decode())
    assert model.evaluate_file(corpus) == expected
    assert model.evaluate_file(tmp_path / "data") == expected
    out = CliRunner().invoke(cli.main, ["eval", str(tmp_path / "run" / "latest.npz"), str(tmp_path / "data"), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout) == expected


def test_trace_neurons_viz_and_novelty_read_a_data_directory(tmp_path, corpus):
    train(corpus, tmp_path / "run", config(4), model_options=MODEL)
    ckpt = str(tmp_path / "run" / "latest.npz")
    runner = CliRunner()
    for source in (str(corpus), str(tmp_path / "data")):
        out = runner.invoke(cli.main, ["trace", ckpt, source, "-o", str(tmp_path / "t.npz"), "--max-symbols", "50"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(cli.main, ["neurons", ckpt, source, "--feature", "line-position", "--max-symbols", "200",
                                       "--json"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(cli.main, ["viz", ckpt, source, "-o", str(tmp_path / "v.html"), "--max-symbols", "80"])
        assert out.exit_code == 0, out.output
    from charlstm.analysis.traces import Trace
    assert Trace.load(tmp_path / "t.npz").text == corpus.read_bytes().decode()[:len(Trace.load(tmp_path / "t.npz").text)]
    on_text = runner.invoke(cli.main, ["novelty", ckpt, str(corpus), "--json", "--n-samples", "2", "--length", "60"])
    on_data = runner.invoke(cli.main, ["novelty", ckpt, str(tmp_path / "data"), "--json", "--n-samples", "2",
                                       "--length", "60"])
    assert on_text.exit_code == 0 and on_data.exit_code == 0, on_data.output
    a, b = json.loads(on_text.stdout), json.loads(on_data.stdout)
    assert b["corpus_unit"] == "symbols" and b["corpus_characters"] == len(open_data_dir(tmp_path / "data"))
    assert 0 <= b["share"]["10"] <= 1 and a["share"]["10"] is not None
