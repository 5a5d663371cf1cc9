"""The notebook API (charlstm.train / load / evaluate, Model) and the README's notebook example."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import charlstm
from charlstm.model import State, forward
from charlstm.nn.head import cross_entropy_forward

REPO = Path(__file__).resolve().parent.parent


def lines_text(n=80):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta"]
    return "".join(" ".join(rng.choice(words, size=3)) + "\n" for _ in range(n))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    model = charlstm.train(text=lines_text(), out_dir=out, hidden_size=12, num_layers=2, max_steps=20,
                           eval_every=10, batch_size=4, seq_length=16, lr=1e-2, sample_length=10,
                           progress=False)
    return model, out


def test_train_returns_a_model_with_history(trained):
    model, out = trained
    assert isinstance(model, charlstm.Model)
    assert model.config.hidden_size == 12 and model.config.num_layers == 2
    assert model.config.vocab_size == len(model.vocab)
    assert [ev.step for ev in model.history] == [10, 20]
    assert model.out_dir == out and not model.interrupted
    assert (out / "latest.npz").exists() and (out / "best.npz").exists() and (out / "metrics.jsonl").exists()
    assert re.fullmatch(r"Model\(2 x 12 LSTM, embedding 12, \d+ symbols \(grapheme\), [\d,]+ parameters\)", repr(model))
    n = sum(p.size for p in model.params.values())
    assert f"{n:,} parameters" in repr(model)


def test_train_accepts_a_config_and_overrides(tmp_path):
    config = charlstm.TrainConfig(batch_size=4, seq_length=8, max_steps=50, eval_every=100, sample_length=5)
    model = charlstm.train(text=lines_text(30), out_dir=tmp_path, config=config, max_steps=3, hidden_size=6,
                           num_layers=1, progress=False)
    assert model.history[-1].step == 3
    assert model.config.num_layers == 1 and model.config.hidden_size == 6


def test_sample_returns_a_string_or_a_list(trained):
    model, _ = trained
    text = model.sample(50, temperature=0.8, prime="alpha", seed=1)
    assert isinstance(text, str) and text.startswith("alpha") and len(text) == 55
    assert text == model.sample(50, temperature=0.8, prime="alpha", seed=1)
    many = model.sample(30, num_samples=3, seed=2, stop="\n")
    assert isinstance(many, list) and len(many) == 3 and all("\n" not in t for t in many)
    streamed = "".join(p[0] for p, _ in model.generate(50, temperature=0.8, prime="alpha", seed=1))
    assert streamed == text


def exact_nats(model, text):
    """The mean cross-entropy of the text in one forward pass from a zero state."""
    ids = model.vocab.encode(text, unknown="unk").astype(np.intp)
    L, H = model.config.num_layers, model.config.hidden_size
    dtype = model.params["head.W"].dtype
    state = State(np.zeros((L, 1, H), dtype), np.zeros((L, 1, H), dtype))
    logits, _, _ = forward(model.params, model.config, ids[:-1, None], state)
    return cross_entropy_forward(logits.astype(np.float64), ids[1:])[0], len(ids) - 1


def test_evaluate_is_the_exact_mean_cross_entropy(trained, tmp_path):
    model, out = trained
    text = lines_text(40)                    # longer than one 256-symbol chunk: the state is carried
    assert len(text) > 600
    result = model.evaluate(text)
    nats, n = exact_nats(model, text)
    assert result["symbols"] == n
    assert result["nats_per_char"] == pytest.approx(nats, rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(nats / np.log(2), rel=1e-5)
    path = tmp_path / "held.txt"
    path.write_text(text, encoding="utf-8")
    assert charlstm.evaluate(model, text=text) == result
    assert charlstm.evaluate(model, path=path) == result
    assert charlstm.evaluate(str(out / "latest.npz"), text=text) == result
    assert charlstm.evaluate(out / "latest.npz", path=str(path)) == result
    with pytest.raises(charlstm.CharlstmError):
        charlstm.evaluate(model, text=text, path=path)


def test_evaluate_uniform_model_gives_log_vocabulary_size():
    vocab = charlstm.build_vocab("abcd")
    model = charlstm.Model.create(vocab, hidden_size=4, num_layers=1, dtype=np.float64)
    model.params["head.W"][:] = 0
    result = model.evaluate("abcdabcd")
    assert result["nats_per_char"] == pytest.approx(np.log(4), rel=1e-12)
    assert result["bits_per_char"] == pytest.approx(2.0, rel=1e-12)
    assert result["symbols"] == 7


def test_save_and_load_round_trip(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "m.npz"
    model.save(path)
    again = charlstm.load(path)
    assert again.config == model.config and again.vocab == model.vocab
    for k in model.params:
        np.testing.assert_array_equal(again.params[k], model.params[k])
    assert again.sample(40, seed=5) == model.sample(40, seed=5)
    # a checkpoint written by Model.save carries no training state
    from charlstm.training.checkpoint import load_checkpoint
    assert load_checkpoint(path).train is None


def test_create_is_seeded():
    vocab = charlstm.build_vocab("hello world")
    a = charlstm.Model.create(vocab, hidden_size=8, num_layers=2, seed=1)
    b = charlstm.Model.create(vocab, hidden_size=8, num_layers=2, seed=1)
    assert a.config == b.config == charlstm.ModelConfig(vocab_size=len(vocab), hidden_size=8, num_layers=2)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert a.sample(30, seed=0) == b.sample(30, seed=0)
    assert charlstm.Model.create(vocab).config.hidden_size == charlstm.ModelConfig(vocab_size=1).hidden_size


def test_public_names():
    for name in ("Model", "load", "train", "evaluate", "TrainConfig", "ModelConfig", "Vocab", "build_vocab",
                 "CharlstmError", "__version__"):
        assert name in charlstm.__all__ and hasattr(charlstm, name)


def readme_notebook_block():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## In a notebook", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's notebook section has no python block"
    return match.group(1)


def test_readme_notebook_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = readme_notebook_block()
    assert "charlstm.train(" in code and "corpora/counting.txt" in code
    (tmp_path / "corpora").mkdir()
    shutil.copy(REPO / "corpora" / "counting.txt", tmp_path / "corpora" / "counting.txt")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Model(1 x 32 LSTM, embedding 32, 4 symbols (grapheme)")
    assert (tmp_path / "runs" / "nb" / "model.npz").exists()
    assert (tmp_path / "runs" / "nb" / "best.npz").exists()
    # the last line is the evaluation dict, and a model trained on counting is well below log(4)
    result = eval(out[-1], {})
    assert set(result) == {"nats_per_char", "bits_per_char", "symbols"} and result["symbols"] == 11
    assert result["nats_per_char"] < np.log(4)


def test_a_cell_registered_after_import_trains_through_the_api(tmp_path):
    """The studies (scripts/init_study.py, scripts/cell_study.py) register variants of a cell with
    another start; the API's check of `cell` reads the registry, not a list fixed at import."""
    from dataclasses import replace

    from charlstm.nn.cells import CELLS, lstm, register

    def forget_zero(D, H, rng, one_hot):
        params = lstm.init(D, H, rng, one_hot)
        params["b"][H:2 * H] = 0.0
        return params

    register(replace(lstm.CELL, name="lstm-variant", init=forget_zero))
    try:
        model = charlstm.train(text=lines_text(), out_dir=tmp_path / "run", cell="lstm-variant", hidden_size=6,
                               batch_size=4, seq_length=16, num_layers=1, max_steps=2, sample_length=0, progress=False)
        assert model.config.cell == "lstm-variant"
    finally:
        del CELLS["lstm-variant"]
    with pytest.raises(charlstm.CharlstmError, match="cell must be one of lstm"):
        charlstm.train(text=lines_text(), out_dir=tmp_path / "again", cell="lstm-variant", max_steps=1)
