"""The numbers of today's LSTM are the numbers it had before the cell interface.

The golden files (tests/data, made by tests/data/make_golden_v1.py) were written on one CPU. A
BLAS sums a product's terms in an order that depends on the CPU's kernel (AVX2 and AVX-512 builds
of OpenBLAS differ), so the same run elsewhere differs in the last bits of float32. The promise
is therefore kept in two parts:
- against the files, within float32 rounding: weights after 30 Adam steps agree to 1e-5
  (measured across an AVX2 and an AVX-512 machine: at most 3.9e-7, about 6 ulps at 1.0), while
  any change to the math (an init, a gate order, a dropout draw, a schedule) moves weights by
  about the learning rate, 1e-2, times a step;
- bit for bit only between two runs on the same machine: a seeded run twice, and a run
  interrupted and resumed against the same run uninterrupted.
"""

import json
import shutil
from pathlib import Path

import numpy as np

import charlstm
from charlstm.training.loop import TrainConfig, train

DATA = Path(__file__).parent / "data"
CONFIG = TrainConfig(batch_size=4, seq_length=12, lr=1e-2, max_steps=30, eval_every=10, val_fraction=0.1,
                     sample_length=30, seed=3)
MODEL = {"hidden_size": 16, "num_layers": 2, "dropout": 0.2, "embedding_size": 0}   # the files are one-hot models
TIMING = {"elapsed_s", "chars_per_s"}
WEIGHT_TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}     # float32 rounding of 30 steps on another CPU
FIGURE_TOLERANCE = {"rtol": 1e-6}                   # losses: means of thousands of terms


def golden_text() -> str:
    return (DATA / "golden_corpus.txt").read_text(encoding="utf-8")


def golden_params():
    with np.load(DATA / "golden_v1_step30.npz") as z:
        return {k: z[k] for k in z.files if k.startswith(("lstm.", "head."))}


def metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in Path(path).read_text(encoding="utf-8").splitlines()]


def assert_metrics_close(got, expected):
    """Steps, epochs, rates and samples equal; losses within float32 rounding."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert set(g) == set(e)
        for key, value in e.items():
            if isinstance(value, float) and key != "epoch" and key != "lr":
                np.testing.assert_allclose(g[key], value, err_msg=key, **FIGURE_TOLERANCE)
            else:
                assert g[key] == value, key


def seeded_run(out_dir, on_eval=None):
    return train(text=golden_text(), out_dir=out_dir, config=CONFIG, model_options=MODEL, progress=False,
                 on_eval=on_eval)


def test_a_seeded_run_trains_to_the_golden_weights_within_float32_rounding(tmp_path):
    result = seeded_run(tmp_path / "run")
    expected = golden_params()
    assert set(result.params) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(result.params[key], value, err_msg=key, **WEIGHT_TOLERANCE)
    assert_metrics_close(metrics(tmp_path / "run" / "metrics.jsonl"), metrics(DATA / "golden_v1_metrics.jsonl"))


def test_a_seeded_run_twice_on_one_machine_gives_the_same_bits(tmp_path):
    first, second = seeded_run(tmp_path / "a"), seeded_run(tmp_path / "b")
    assert set(first.params) == set(second.params)
    for key, value in first.params.items():
        np.testing.assert_array_equal(second.params[key], value, err_msg=key)
    assert metrics(tmp_path / "a" / "metrics.jsonl") == metrics(tmp_path / "b" / "metrics.jsonl")


def test_a_run_interrupted_and_resumed_equals_the_run_uninterrupted_bit_for_bit(tmp_path):
    run = tmp_path / "run"
    saved = tmp_path / "step20.npz"

    def keep_step_20(evaluation):
        if evaluation.step == 20:
            shutil.copy(run / "latest.npz", saved)

    whole = seeded_run(run, on_eval=keep_step_20)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copy(saved, resumed_dir / "latest.npz")
    resumed = train(text=golden_text(), out_dir=resumed_dir, config=CONFIG, resume=resumed_dir / "latest.npz",
                    progress=False)
    assert resumed.step == whole.step == 30
    for key, value in whole.params.items():
        np.testing.assert_array_equal(resumed.params[key], value, err_msg=key)


def test_a_format_1_checkpoint_resumes_to_the_golden_weights_within_float32_rounding(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATA / "golden_v1_step20.npz", run / "latest.npz")
    result = train(text=golden_text(), out_dir=run, config=CONFIG, resume=run / "latest.npz", progress=False)
    assert result.step == 30
    for key, value in golden_params().items():
        np.testing.assert_allclose(result.params[key], value, err_msg=key, **WEIGHT_TOLERANCE)


def test_sampling_and_traces_agree_with_the_format_1_model():
    model = charlstm.load(DATA / "golden_v1_step30.npz")
    assert model.config.cell == "lstm"
    # Samples are discrete: a draw changes only where float32 rounding moves a cumulative
    # probability across the uniform number drawn, about 1e-7 in a unit interval per symbol.
    samples = json.loads((DATA / "golden_v1_samples.json").read_text(encoding="utf-8"))
    assert model.sample(80, temperature=0.8, seed=5, prime="the ") == samples["t0.8_seed5"]
    assert model.sample(40, temperature=0, prime="a dog") == samples["t0"]
    assert model.sample(30, temperature=1.0, seed=2, top_k=5, num_samples=3) == samples["batch3_topk5"]
    t = charlstm.trace(model, golden_text()[:120], chunk=64)
    with np.load(DATA / "golden_v1_trace.npz") as z:
        for q in ("h", "c", "i", "f", "g", "o"):
            # one forward pass of 120 steps: activations of order one agree to float32 rounding
            np.testing.assert_allclose(t.values(q), z[q], rtol=1e-5, atol=1e-6, err_msg=q)
        np.testing.assert_allclose(t.top_probs, z["top_probs"], rtol=1e-5)
        np.testing.assert_allclose(t.loss, z["loss"], rtol=1e-5)
