"""The torch engine (charlstm/engines/pytorch.py) computes the NumPy engine's step: the same loss,
gradients (seen through Adam's first moment, which after one step from zero is (1 - beta1) times
the clipped gradient), updated weights, moments and carried state, for every cell, with and
without an embedding, from a carried state and on a ragged chunk. And runs move between engines.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import charlstm  # noqa: E402
from charlstm.engines.pytorch import TorchEngine  # noqa: E402
from charlstm.model import ModelConfig, init_params, zero_state  # noqa: E402
from charlstm.nn.cells import CELLS  # noqa: E402
from charlstm.nn.optim import adam_init  # noqa: E402
from charlstm.training.checkpoint import load_checkpoint  # noqa: E402
from charlstm.training.config import TrainConfig  # noqa: E402
from charlstm.training.engine import NumpyEngine  # noqa: E402

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(300))


def a_run(cell: str, embedding_size: int, dtype, grad_clip: float = 5.0):
    """A run's parts as the loop holds them, with a carried (non-zero) state."""
    rng = np.random.default_rng(0)
    config = ModelConfig(vocab_size=11, hidden_size=6, num_layers=2, cell=cell, embedding_size=embedding_size,
                         dropout=0.0)           # masks are drawn by each engine's own generator
    params = init_params(config, rng, dtype)
    state = zero_state(config, 4, dtype)
    state = type(state)(**{part: rng.normal(0, 0.5, getattr(state, part).shape).astype(dtype)
                           for part in config.cell_type.state})
    train = TrainConfig(batch_size=4, seq_length=5, grad_clip=grad_clip, dtype=np.dtype(dtype).name)
    return SimpleNamespace(params=params, model_config=config, config=train, adam=adam_init(params), state=state,
                           prog=SimpleNamespace(step=0), rng=np.random.default_rng(1))


def one_step(engine, run, inputs, targets, weights, lr=0.01):
    engine.start(run)
    loss, norm, applied = engine.step(run, inputs, targets, weights, lr)
    engine.sync(run)
    return loss, norm, applied


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("embedding_size", [0, 5])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_step_is_the_numpy_engines_step(cell, embedding_size, ragged, dtype, tol):
    run = a_run(cell, embedding_size, dtype, grad_clip=0.05)    # small enough that clipping acts
    rng = np.random.default_rng(2)
    inputs, targets = rng.integers(0, 11, (5, 4)), rng.integers(0, 11, (5, 4))
    weights = None
    if ragged:          # the end of a pass: streams 1 and 3 have ended
        weights = np.ones((5, 4), dtype=np.float32)
        weights[3:, 1] = 0
        weights[1:, 3] = 0
    mine, theirs = run, copy.deepcopy(run)
    loss_np, norm_np, _ = one_step(NumpyEngine(), mine, inputs, targets, weights)
    loss_t, norm_t, applied = one_step(TorchEngine("cpu"), theirs, inputs, targets, weights)
    assert applied and norm_np > 0.05           # the clip was taken
    assert abs(loss_t - loss_np) <= tol * max(1, abs(loss_np))
    assert abs(norm_t - norm_np) <= tol * max(1, norm_np) * 10
    scale = max(float(np.abs(m).max()) for m in mine.adam.m.values())
    for key in mine.params:
        np.testing.assert_allclose(theirs.adam.m[key], mine.adam.m[key], rtol=tol * 10, atol=tol * scale * 10,
                                   err_msg=f"gradient of {key}")
        np.testing.assert_allclose(theirs.adam.v[key], mine.adam.v[key], rtol=tol * 100,
                                   atol=tol * scale ** 2 * 10, err_msg=f"second moment of {key}")
        np.testing.assert_allclose(theirs.params[key], mine.params[key], rtol=tol * 10, atol=tol * 10,
                                   err_msg=f"updated {key}")
    assert theirs.adam.step == mine.adam.step == 1
    for part in run.model_config.cell_type.state:
        np.testing.assert_allclose(getattr(theirs.state, part), getattr(mine.state, part), rtol=tol * 10,
                                   atol=tol * 10)


def test_a_non_finite_batch_is_not_applied():
    run = a_run("lstm", 5, np.float64)
    before = copy.deepcopy(run.params)
    run.params["head.b"][0] = np.inf       # every loss is now non-finite
    before["head.b"][0] = np.inf
    engine = TorchEngine("cpu")
    loss, norm, applied = one_step(engine, run, np.zeros((5, 4), int), np.zeros((5, 4), int), None)
    assert not applied and not np.isfinite(loss)
    for key in before:
        np.testing.assert_array_equal(run.params[key], before[key])
        assert not run.adam.m[key].any()


def test_runs_move_between_engines(tmp_path):
    """numpy 12 steps; numpy 6 then torch 6; torch 6 then numpy 6: the same weights, Adam's moments
    and step, schedule, stream position and carried state are taken over. In float64, so that the
    comparison is tight: in float32, Adam's m / sqrt(v) turns rounding in a gradient near zero into
    a step of up to the learning rate, and runs part by some 1e-3 within a few steps."""
    (tmp_path / "c.txt").write_text(TEXT)
    options = dict(max_steps=12, batch_size=4, seq_length=16, hidden_size=16, num_layers=2, dropout=0.0,
                   eval_every=6, sample_length=0, progress=False, stop_on_interrupt=False, dtype="float64",
                   lr_schedule="cosine")
    straight = charlstm.train(tmp_path / "c.txt", tmp_path / "np", **options)
    for first, then in (("numpy", "torch"), ("torch", "numpy")):
        out = tmp_path / f"{first}-{then}"
        calls = [0]

        def after_six_steps():
            calls[0] += 1
            return calls[0] > 6

        stopped = charlstm.train(tmp_path / "c.txt", out, **options, engine=first, should_stop=after_six_steps)
        assert stopped.interrupted and stopped.step == 6
        moved = charlstm.train(tmp_path / "c.txt", out, resume=out / "latest.npz", max_steps=12, engine=then,
                               progress=False, stop_on_interrupt=False)
        assert moved.step == 12
        for key in straight.params:
            np.testing.assert_allclose(moved.params[key], straight.params[key], rtol=1e-7, atol=1e-9,
                                       err_msg=f"{first} -> {then}: {key}")
        saved = load_checkpoint(out / "latest.npz")
        assert saved.train["engine"] == then and saved.train["progress"]["step"] == 12


def test_the_torch_engine_trains_every_cell_and_learns(tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    for cell in sorted(CELLS):
        model = charlstm.train(tmp_path / "c.txt", tmp_path / cell, engine="torch", cell=cell, max_steps=60,
                               batch_size=8, seq_length=32, hidden_size=32, num_layers=1, eval_every=30,
                               sample_length=0, progress=False, stop_on_interrupt=False, lr=1e-2)
        first, last = model.history[0].val_nats, model.history[-1].val_nats
        assert last < first < np.log(model.config.vocab_size), (cell, first, last)


def test_refusals_are_one_line(tmp_path):
    from click.testing import CliRunner
    from charlstm import cli
    (tmp_path / "c.txt").write_text(TEXT)
    runner = CliRunner()
    for args, words in ((["--device", "cuda"], "device"),                    # the NumPy engine has no device
                        (["--engine", "torch", "--device", "tpu"], "not a device"),
                        (["--engine", "torch", "--device", "cuda:7"], "cuda:7"),
                        (["--engine", "torch", "--batch-size", "3"], None)):
        out = runner.invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "r"),
                                       "--max-steps", "2", "--quiet", *args])
        if words is None:       # one process: any batch size
            assert out.exit_code == 0, out.output
            continue
        assert out.exit_code == 1 and len(out.stderr.splitlines()) == 1 and words in out.stderr, out.stderr
        assert "Traceback" not in out.output


def test_without_torch_the_engine_is_one_line_saying_how_to_install_it(tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from charlstm.cli import main\n"
            f"main(['train', {str(tmp_path / 'c.txt')!r}, '--out', {str(tmp_path / 'r')!r}, '--engine', 'torch', "
            "'--max-steps', '2'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "PyTorch is not installed" in done.stderr and "[torch]" in done.stderr
    assert not (tmp_path / "r").exists()


# --- several processes (gloo on the CPU) ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# float64 and a constant learning rate: a run of 8 steps resumed to 12 is then the run of 12,
# within float64 rounding of sums taken in another order
TRAIN = ["--engine", "torch", "--batch-size", "4", "--seq-length", "16", "--hidden", "16", "--layers", "2",
         "--dropout", "0", "--sample-length", "0", "--quiet", "--dtype", "float64", "--lr-schedule", "constant"]


def env_for(rank: int, world: int, port: int) -> dict:
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
            "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world), "OMP_NUM_THREADS": "1"}


def test_a_torchrun_run_of_two_processes_is_the_one_process_run_and_resumes_on_one(tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    corpus = str(tmp_path / "c.txt")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(free_port()), "-m", "charlstm", "train", corpus,
                          "--out", str(tmp_path / "two"), "--max-steps", "8", "--eval-every", "4", *TRAIN],
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name != ".lock") == ["best.npz", "latest.npz",
                                                                                   "metrics.jsonl"]
    assert two.stderr.count("step 8: validation") == 1        # rank 0 alone speaks
    resumed = charlstm.train(corpus, tmp_path / "two", resume=tmp_path / "two" / "latest.npz", max_steps=12,
                             engine="torch", progress=False, stop_on_interrupt=False)
    one = charlstm.train(corpus, tmp_path / "one", max_steps=12, batch_size=4, seq_length=16, hidden_size=16,
                         num_layers=2, dropout=0.0, eval_every=4, sample_length=0, engine="torch", progress=False,
                         stop_on_interrupt=False, dtype="float64", lr_schedule="constant")
    for key in one.params:
        np.testing.assert_allclose(resumed.params[key], one.params[key], rtol=1e-7, atol=1e-9, err_msg=key)
    metrics = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3                                     # steps 4, 8 (two processes), 12 (one)


def start_two(tmp_path, steps: int = 100_000):
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", "charlstm", "train", str(tmp_path / "c.txt"), "--out",
                              str(tmp_path / "run"), "--max-steps", str(steps), "--eval-every", "5", *TRAIN],
                             env=env_for(rank, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank in range(2)]


def wait_for_checkpoint(tmp_path, procs):
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "latest.npz").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate()[1] for p in procs]
        time.sleep(0.2)


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_of_two_processes_saves_once_and_every_process_exits_130(tmp_path, sent):
    (tmp_path / "c.txt").write_text(TEXT)
    procs = start_two(tmp_path)
    wait_for_checkpoint(tmp_path, procs)
    time.sleep(0.5)
    for p in procs:                     # a terminal's Ctrl-C reaches every process of the job (torchrun
        p.send_signal(sent)             # passes a SIGTERM on to each)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [130, 130], outs
    first, second = outs[0][1], outs[1][1]
    assert first.count("Interrupted at step") == 1 and "Traceback" not in first
    assert first.rstrip().endswith("--resume " + str(tmp_path / "run" / "latest.npz") + " --engine torch")
    assert second == "", second
    saved = load_checkpoint(tmp_path / "run" / "latest.npz")
    step = saved.train["progress"]["step"]
    assert f"Interrupted at step {step};" in first
    resumed = charlstm.train(tmp_path / "c.txt", tmp_path / "run", resume=tmp_path / "run" / "latest.npz",
                             max_steps=step + 2, progress=False, stop_on_interrupt=False)
    assert resumed.step == step + 2


def test_a_killed_process_stops_the_other_with_one_line_and_the_checkpoint_stays(tmp_path):
    (tmp_path / "c.txt").write_text(TEXT)
    procs = start_two(tmp_path)
    wait_for_checkpoint(tmp_path, procs)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=180)
    procs[1].communicate()
    assert procs[0].returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "another process of this run stopped" in lines[0] and "Traceback" not in err, err
    saved = load_checkpoint(tmp_path / "run" / "latest.npz")        # readable, and resumable
    assert saved.train["progress"]["step"] % 5 == 0


def test_two_processes_read_a_large_corpus_the_first_one_encodes(tmp_path):
    """A gzipped (or large) corpus is encoded once into OUT/data by the first process; the other
    waits for it and maps the same ids."""
    import gzip
    with gzip.open(tmp_path / "c.txt.gz", "wt", encoding="utf-8") as f:
        f.write(TEXT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(free_port()), "-m", "charlstm", "train", str(tmp_path / "c.txt.gz"),
                           "--out", str(tmp_path / "run"), "--max-steps", "4", *TRAIN],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "data" / "ids.npy").exists()
    assert load_checkpoint(tmp_path / "run" / "latest.npz").train["progress"]["step"] == 4
