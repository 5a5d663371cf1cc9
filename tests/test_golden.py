"""The numbers of today's LSTM are the numbers it had before the cell interface: a seeded run
trains to bit-identical weights, a format-1 checkpoint resumes bit-exactly, and sampling and
traces agree (see tests/data/make_golden_v1.py for how the files were made)."""

import json
import shutil
from pathlib import Path

import numpy as np

import charlstm
from charlstm.training.loop import TrainConfig, train

DATA = Path(__file__).parent / "data"
CONFIG = TrainConfig(batch_size=4, seq_length=12, lr=1e-2, max_steps=30, eval_every=10, val_fraction=0.1,
                     sample_length=30, seed=3)
TIMING = {"elapsed_s", "chars_per_s"}


def golden_params():
    with np.load(DATA / "golden_v1_step30.npz") as z:
        return {k: z[k] for k in z.files if k.startswith(("lstm.", "head."))}


def metrics(path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_a_seeded_run_trains_to_the_same_bits(tmp_path):
    text = (DATA / "golden_corpus.txt").read_text(encoding="utf-8")
    result = train(text=text, out_dir=tmp_path / "run", config=CONFIG,
                   model_options={"hidden_size": 16, "num_layers": 2, "dropout": 0.2}, progress=False)
    expected = golden_params()
    assert set(result.params) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(result.params[key], value, err_msg=key)
    assert metrics(tmp_path / "run" / "metrics.jsonl") == metrics(DATA / "golden_v1_metrics.jsonl")


def test_a_format_1_checkpoint_resumes_bit_exactly(tmp_path):
    text = (DATA / "golden_corpus.txt").read_text(encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATA / "golden_v1_step20.npz", run / "latest.npz")
    result = train(text=text, out_dir=run, config=CONFIG, resume=run / "latest.npz", progress=False)
    assert result.step == 30
    for key, value in golden_params().items():
        np.testing.assert_array_equal(result.params[key], value, err_msg=key)


def test_sampling_and_traces_agree_with_the_format_1_model():
    model = charlstm.load(DATA / "golden_v1_step30.npz")
    assert model.config.cell == "lstm"
    samples = json.loads((DATA / "golden_v1_samples.json").read_text(encoding="utf-8"))
    assert model.sample(80, temperature=0.8, seed=5, prime="the ") == samples["t0.8_seed5"]
    assert model.sample(40, temperature=0, prime="a dog") == samples["t0"]
    assert model.sample(30, temperature=1.0, seed=2, top_k=5, num_samples=3) == samples["batch3_topk5"]
    text = (DATA / "golden_corpus.txt").read_text(encoding="utf-8")[:120]
    t = charlstm.trace(model, text, chunk=64)
    with np.load(DATA / "golden_v1_trace.npz") as z:
        for q in ("h", "c", "i", "f", "g", "o"):
            np.testing.assert_array_equal(t.values(q), z[q], err_msg=q)
        np.testing.assert_allclose(t.top_probs, z["top_probs"], rtol=1e-6)
        np.testing.assert_allclose(t.loss, z["loss"], rtol=1e-6)
