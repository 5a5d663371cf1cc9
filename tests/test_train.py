"""charlstm.train: a small run that must learn, the run directory's files, resume equal to an
uninterrupted run (with and without dropout), reproducible sampling from a saved checkpoint, and
float32 training that tracks float64."""

import json
import math
from collections import Counter

import numpy as np
import pytest

from charlstm.api import load
from charlstm.training.checkpoint import load_checkpoint
from charlstm.training.loop import TrainConfig, train

METRIC_FIELDS = {"step", "epoch", "elapsed_s", "train_loss", "val_nats", "val_bpc", "chars_per_s", "lr", "sample"}
TIMING_FIELDS = {"elapsed_s", "chars_per_s"}


def sentences(n_lines, seed=0):
    """A tiny language: 5 x 4 x 5 sentences, so about 4.6 nats of choice per ~25-symbol line."""
    rng = np.random.default_rng(seed)
    subjects = ["the cat", "a dog", "my friend", "the old man", "every bird"]
    verbs = ["sees", "likes", "follows", "finds"]
    objects = ["the red ball", "a small house", "the river", "some bread", "the moon"]
    return "".join(f"{subjects[rng.integers(5)]} {verbs[rng.integers(4)]} {objects[rng.integers(5)]}.\n"
                   for _ in range(n_lines))


def unigram_entropy(text):
    n = len(text)
    return -sum(k / n * math.log(k / n) for k in Counter(text).values())


def read_metrics(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_training_learns_and_writes_the_run_directory(tmp_path):
    text = sentences(300)                                  # about 8.5 KB
    entropy = unigram_entropy(text)
    assert entropy > 2.5
    config = TrainConfig(batch_size=8, seq_length=32, lr=1e-2, lr_schedule="constant", max_steps=200, eval_every=50,
                         val_fraction=0.1, sample_length=40, seed=0)
    seen = []
    result = train(text=text, out_dir=tmp_path / "run", config=config, model_options={"hidden_size": 32, "num_layers": 1},
                   progress=False, on_eval=seen.append)
    assert result.step == 200 and not result.interrupted
    vals = [ev.val_nats for ev in result.evaluations]
    assert [ev.step for ev in result.evaluations] == [50, 100, 150, 200]
    assert vals[-1] < 0.3 * entropy, (vals, entropy)       # far below what symbol frequencies give
    assert vals[-1] < vals[0]
    assert seen == result.evaluations

    run = tmp_path / "run"
    assert (run / "latest.npz").is_file() and (run / "best.npz").is_file()
    metrics = read_metrics(run / "metrics.jsonl")
    assert len(metrics) == 4
    for m, ev in zip(metrics, result.evaluations):
        assert set(m) == METRIC_FIELDS
        assert m["val_bpc"] == pytest.approx(m["val_nats"] / math.log(2), rel=1e-12)
        assert m["val_nats"] == pytest.approx(ev.val_nats, rel=1e-12)
        assert m["lr"] == pytest.approx(1e-2) and m["chars_per_s"] > 0 and m["elapsed_s"] >= 0
        assert isinstance(m["sample"], str) and len(m["sample"]) == 40
        assert math.isfinite(m["train_loss"])
    assert [m["step"] for m in metrics] == [50, 100, 150, 200]
    assert metrics[-1]["epoch"] > metrics[0]["epoch"]

    latest = load_checkpoint(run / "latest.npz")
    assert latest.train["progress"]["step"] == 200
    for k in result.params:
        np.testing.assert_array_equal(latest.params[k], result.params[k])
    best = load_checkpoint(run / "best.npz")
    best_step = min(metrics, key=lambda m: m["val_nats"])["step"]
    assert best.train["progress"]["step"] == best_step
    assert best.train["progress"]["best_val"] == pytest.approx(min(vals), rel=1e-12)


def test_epochs_bound_runs_one_pass(tmp_path):
    text = sentences(40)
    config = TrainConfig(batch_size=4, seq_length=16, epochs=1, eval_every=1000, sample_length=5)
    result = train(text=text, out_dir=tmp_path, config=config, model_options={"hidden_size": 8, "num_layers": 1},
                   progress=False)
    n_train = len(text) - int(len(text) * 0.05)
    assert result.step == math.ceil((n_train - 1) / 4 / 16)
    assert len(result.evaluations) == 1 and result.evaluations[0].epoch == pytest.approx(1.0)


def run_config(max_steps, **overrides):
    # a learning rate that does not depend on the bounds: N steps then N more must equal 2N
    base = dict(batch_size=16, seq_length=16, lr=5e-3, lr_schedule="constant", max_steps=max_steps, eval_every=4,
                val_fraction=0.1, sample_length=20, seed=3)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_equals_uninterrupted(tmp_path, dropout):
    text = sentences(60)                       # about 6 chunks per pass: the runs cross epochs
    model = {"hidden_size": 16, "num_layers": 2, "dropout": dropout}
    N = 8
    straight = train(text=text, out_dir=tmp_path / "straight", config=run_config(2 * N), model_options=model,
                     progress=False)
    first = train(text=text, out_dir=tmp_path / "resumed", config=run_config(N), model_options=model, progress=False)
    assert first.step == N
    resumed = train(text=text, out_dir=tmp_path / "resumed", config=run_config(2 * N),
                    resume=tmp_path / "resumed" / "latest.npz", progress=False)
    assert resumed.step == straight.step == 2 * N
    steps_per_pass = math.ceil((len(text) - int(len(text) * 0.1) - 1) / 16 / 16)
    assert steps_per_pass < N and N % steps_per_pass != 0   # stopped mid-pass, after a pass ended

    a = load_checkpoint(tmp_path / "straight" / "latest.npz")
    b = load_checkpoint(tmp_path / "resumed" / "latest.npz")
    assert a.config == b.config and a.config.dropout == dropout
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)     # bit for bit
    assert set(a.extra) == set(b.extra)
    for k in a.extra:
        np.testing.assert_array_equal(a.extra[k], b.extra[k], err_msg=k)       # Adam moments, state
    assert a.train["progress"] | {"elapsed_s": 0} == b.train["progress"] | {"elapsed_s": 0}
    assert a.train["rng"] == b.train["rng"] and a.train["adam_step"] == b.train["adam_step"] == 2 * N

    strip = lambda ms: [{k: v for k, v in m.items() if k not in TIMING_FIELDS} for m in ms]  # noqa: E731
    ma = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    mb = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [m["step"] for m in ma] == [4, 8, 12, 16]
    assert strip(ma) == strip(mb)
    # and the runs really trained: the parameters moved from the initial ones
    fresh = train(text=text, out_dir=tmp_path / "zero", config=run_config(0), model_options=model, progress=False)
    assert not np.array_equal(fresh.params["head.W"], a.params["head.W"])


@pytest.mark.parametrize("steps", [3, 9])
def test_state_carries_across_chunks_and_resets_each_pass(tmp_path, steps):
    """The checkpoint's carried state is the final state of reading every chunk of the current
    pass in order from a zero state (with a learning rate so small the weights do not move)."""
    from charlstm.data.streams import make_streams, split_ids
    from charlstm.model import forward, init_params, zero_state
    from charlstm.data.vocab import build_vocab

    text = sentences(60)
    config = run_config(steps, lr=1e-30, eval_every=100, dtype="float64")
    model = {"hidden_size": 8, "num_layers": 2, "dropout": 0.0}
    train(text=text, out_dir=tmp_path, config=config, model_options=model, progress=False)
    saved = load_checkpoint(tmp_path / "latest.npz")

    vocab = build_vocab(text)
    streams = make_streams(split_ids(vocab.encode(text), 0.1)[0], 16, 16)
    assert streams.chunks_per_pass == 6
    params = init_params(saved.config, np.random.default_rng(config.seed), np.float64)
    state = zero_state(saved.config, 16, np.float64)
    for chunk in range(steps % streams.chunks_per_pass):          # the current pass only
        inputs, _, _ = streams.chunk(chunk)
        _, state, _ = forward(params, saved.config, inputs.astype(np.intp), state)
    assert np.abs(state.h).max() > 0.01
    np.testing.assert_allclose(saved.extra["state.h"], state.h, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(saved.extra["state.c"], state.c, rtol=1e-9, atol=1e-12)


def test_saved_checkpoint_samples_the_same_text(tmp_path):
    text = sentences(60)
    result = train(text=text, out_dir=tmp_path, config=run_config(6), model_options={"hidden_size": 16, "num_layers": 2, "dropout": 0.0},
                   progress=False)
    model = load(tmp_path / "latest.npz")
    again = load(tmp_path / "latest.npz")
    kwargs = dict(length=120, temperature=0.9, prime="the ", seed=11)
    text_a = model.sample(**kwargs)
    assert text_a == again.sample(**kwargs)
    from charlstm.api import Model
    in_memory = Model(result.params, result.config, result.vocab)
    assert in_memory.sample(**kwargs) == text_a
    assert model.sample(**dict(kwargs, seed=12)) != text_a
    model.save(tmp_path / "copy.npz")
    assert load(tmp_path / "copy.npz").sample(**kwargs) == text_a


def test_float32_training_tracks_float64(tmp_path):
    text = sentences(60)
    losses = {}
    for dtype in ("float32", "float64"):
        config = run_config(6, eval_every=1, dtype=dtype, sample_length=1)
        result = train(text=text, out_dir=tmp_path / dtype, config=config,
                       model_options={"hidden_size": 16, "num_layers": 2, "dropout": 0.0}, progress=False)
        assert result.params["head.W"].dtype == np.dtype(dtype)
        losses[dtype] = [(ev.train_loss, ev.val_nats) for ev in result.evaluations]
        assert load_checkpoint(tmp_path / dtype / "latest.npz").params["head.W"].dtype == np.dtype(dtype)
    assert len(losses["float32"]) == 6
    for (t32, v32), (t64, v64) in zip(losses["float32"], losses["float64"]):
        assert t32 == pytest.approx(t64, rel=1e-4)
        assert v32 == pytest.approx(v64, rel=1e-4)
    assert losses["float64"][-1][0] < losses["float64"][0][0]       # and it learned something
