"""Nothing lost: crashes, signals, divergence, full disks and concurrent runs.

- SIGKILL at random moments (and on purpose in the middle of checkpoint writes), 22 times in a
  row on one run directory: latest.npz always loads, every run resumes from the one before, and
  the run that finally completes has bit-identical weights to one that was never killed.
- SIGINT and SIGTERM save latest.npz at the step reached, exit 130 and say how to resume.
- Resume is exact: 2N steps in one go and N + N resumed end with identical arrays and metrics,
  with dropout on and off.
- A NaN or inf loss or gradient never reaches the weights; the run stops naming the step with its
  last good checkpoint intact, or (on_nonfinite="skip") skips the batch, halves the learning rate
  and logs it.
- A full disk is found before training, or fails a save without touching the previous
  checkpoint; a second run on a locked directory is refused in one line.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charlstm import cli
from charlstm.training.checkpoint import load_checkpoint
from charlstm.errors import CharlstmError
from charlstm.training.rundir import RunDir
from charlstm.training.loop import TrainConfig

train_module = sys.modules["charlstm.training.loop"]
step_module = sys.modules["charlstm.training.engine"]       # the NumPy engine's step
run_training = train_module.train


def _after_recipe(stderr: str) -> list[str]:
    """stderr's lines after the one in which a started run says what the recipe chose."""
    return [line for line in stderr.splitlines() if not line.startswith("recipe: ")]


def make_corpus(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = "the quick brown fox jumps over lazy dog and then some more words appear here".split()
    return "".join(" ".join(rng.choice(words) for _ in range(10)) + "\n" for _ in range(n_lines))


CORPUS = make_corpus(200)          # about 10 kB: 160 chunks of 4 x 16 per pass
SMALL = make_corpus(30)            # about 1.5 kB: 23 chunks per pass, so short runs cross passes
# The settings these tests reproduce by hand are named, not inherited from the defaults: no
# dropout unless a test adds it, and a learning rate that does not depend on the run's bounds.
MODEL = {"hidden_size": 16, "num_layers": 1, "dropout": 0.0}
CONFIG = TrainConfig(batch_size=4, seq_length=16, sample_length=10, seed=3, lr=2e-3, lr_schedule="constant")
# A constant learning rate: these runs change --max-steps between kill and resume, and a cosine
# schedule is defined over the run's length (its exact resume at equal bounds is tested below).
CLI_MODEL = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-length", "16", "--seed", "3",
             "--lr-schedule", "constant", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def charlstm_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "charlstm", *[str(a) for a in args]]


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "meta"}


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def metrics_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def step_of(path: Path) -> int:
    return load_checkpoint(path).train["progress"]["step"]


def wait_for(condition, timeout: float, proc=None, what=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended early (exit {proc.returncode}) while waiting for {what()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what()}")
        time.sleep(0.002)


# --- SIGKILL -------------------------------------------------------------------------------------

def test_sigkill_at_random_moments_never_loses_the_checkpoint(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "run"
    latest = out / "latest.npz"
    rng = random.Random(20240601)
    steps, mid_write_kills, trials = [0], 0, 22
    for trial in range(trials):
        args = [corpus, "--out", out, "--max-steps", "100000", "--quiet"]
        if latest.exists():   # each run resumes from whatever the one before it left
            args += ["--resume", latest]
        else:
            args += [*CLI_MODEL, "--dropout", "0.2", "--eval-every", "1"]
        with open(tmp_path / "stderr", "wb") as err:
            proc = subprocess.Popen(charlstm_cmd("train", *args), stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        tmp_names = (f".latest.npz.tmp-{proc.pid}", f".best.npz.tmp-{proc.pid}")
        if trial % 2:      # kill while this process is writing a checkpoint (or copying it to best)
            time.sleep(rng.choice([0.0, rng.uniform(0.5, 1.2)]))
            wait_for(lambda: any((out / n).exists() for n in tmp_names), 30, proc,
                     lambda: f"a checkpoint write: {(tmp_path / 'stderr').read_text()}")
        else:              # kill at a random moment: during start-up, a step, an evaluation or a write
            time.sleep(rng.uniform(0.05, 1.6))
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        mid_write_kills += any((out / n).exists() for n in tmp_names)

        if latest.exists():   # under its real name, the checkpoint is always whole and valid
            ckpt = load_checkpoint(latest)
            assert ckpt.train is not None
            step = ckpt.train["progress"]["step"]
            assert step >= steps[-1], "a kill lost progress that had been checkpointed"
            steps.append(step)
            if (out / "best.npz").exists():
                load_checkpoint(out / "best.npz")
            if (out / "metrics.jsonl").exists():
                records = (out / "metrics.jsonl").read_bytes().split(b"\n")
                for line in records[:-1]:      # the last one may be cut short; the next run repairs it
                    json.loads(line)
    assert mid_write_kills >= 3, "the harness never caught a checkpoint write in progress"
    assert steps[-1] >= 5 and len(set(steps)) >= 4, steps     # the kills did land during training

    # The next run cleans up what the kills left and finishes; its weights equal an unkilled run's.
    final = steps[-1] + 3
    done = subprocess.run(charlstm_cmd("train", corpus, "--out", out, "--resume", latest, "--max-steps", final,
                                       "--quiet"), capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert step_of(latest) == final
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name or p.name.startswith(".write-test")]
    records = metrics_of(out / "metrics.jsonl")
    assert records[-1]["step"] == final
    reference = tmp_path / "reference"
    straight = subprocess.run(charlstm_cmd("train", corpus, "--out", reference, *CLI_MODEL, "--dropout", "0.2",
                                           "--eval-every", "100000", "--max-steps", final),
                              capture_output=True, text=True, env=ENV, timeout=60)
    assert straight.returncode == 0, straight.stderr
    assert_same_arrays(arrays_of(latest), arrays_of(reference / "latest.npz"))


# --- SIGINT / SIGTERM ----------------------------------------------------------------------------

RESUME_TO = 500


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The arrays of a run of RESUME_TO steps that nothing interrupted (in a subprocess too)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "c.txt").write_text(CORPUS)
    done = subprocess.run(charlstm_cmd("train", root / "c.txt", "--out", root / "run", *CLI_MODEL, "--dropout",
                                       "0.2", "--eval-every", "50", "--max-steps", RESUME_TO),
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    return arrays_of(root / "run" / "latest.npz")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_and_says_how_to_resume(tmp_path, sig, uninterrupted):
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "run"
    proc = subprocess.Popen(charlstm_cmd("train", corpus, "--out", out, *CLI_MODEL, "--dropout", "0.2",
                                         "--eval-every", "50", "--max-steps", "1000000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(lambda: (out / "metrics.jsonl").exists(), 30, proc, lambda: "the first evaluation")
    time.sleep(0.02)                 # somewhere between two evaluations, most likely
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert "--resume" in last and str(out / "latest.npz") in last, last
    step = int(last.split("Interrupted at step ")[1].split(";")[0])
    assert 50 <= step < RESUME_TO
    assert step_of(out / "latest.npz") == step           # nothing after the last step is lost
    # the interrupt adds no evaluation: the record ends at the last evaluation step before it
    assert metrics_of(out / "metrics.jsonl")[-1]["step"] == step // 50 * 50

    # Resuming with the printed command's checkpoint ends exactly where an uninterrupted run does.
    resumed = subprocess.run(charlstm_cmd("train", corpus, "--out", out, "--resume", out / "latest.npz",
                                          "--max-steps", RESUME_TO, "--quiet"),
                             capture_output=True, text=True, env=ENV, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_arrays(arrays_of(out / "latest.npz"), uninterrupted)


# --- exact resume --------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_is_exact(tmp_path, monkeypatch, dropout):
    """2N steps in one go == N steps, then resumed for N more: every array (weights, Adam's
    moments, carried state) bit-identical, and the same metrics except the timings. N = 30
    crosses a pass boundary (23 chunks per pass, the last one ragged)."""
    N = 30
    model = {**MODEL, "dropout": dropout}
    config = replace(CONFIG, eval_every=10, max_steps=2 * N)
    straight = run_training(text=SMALL, out_dir=tmp_path / "a", config=config, model_options=model, progress=False)
    run_training(text=SMALL, out_dir=tmp_path / "b", config=replace(config, max_steps=N), model_options=model,
                 progress=False)
    shutil.copyfile(tmp_path / "b" / "latest.npz", tmp_path / "half.npz")
    resumed = run_training(text=SMALL, out_dir=tmp_path / "b", config=config, resume=tmp_path / "b" / "latest.npz",
                           progress=False)
    assert resumed.step == straight.step == 2 * N
    assert_same_arrays(straight.params, resumed.params)
    a, b = tmp_path / "a" / "latest.npz", tmp_path / "b" / "latest.npz"
    assert_same_arrays(arrays_of(a), arrays_of(b))
    train_a, train_b = load_checkpoint(a).train, load_checkpoint(b).train
    assert train_a["rng"] == train_b["rng"] and train_a["adam_step"] == train_b["adam_step"] == 2 * N
    for record in (train_a["progress"], train_b["progress"]):
        record.pop("elapsed_s")
    assert train_a["progress"] == train_b["progress"] and train_a["progress"]["epoch"] >= 2

    def comparable(path):
        return [{k: v for k, v in r.items() if k not in ("elapsed_s", "chars_per_s")} for r in metrics_of(path)]

    metrics = comparable(tmp_path / "a" / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [10, 20, 30, 40, 50, 60]
    assert metrics == comparable(tmp_path / "b" / "metrics.jsonl")
    if dropout:   # dropout draws from the saved generator: a resume that forgot it would differ
        real_restore = train_module.restore_training_state

        def forgetful_restore(saved, params, rng, *args):
            restored = real_restore(saved, params, rng, *args)
            rng.bit_generator.state = np.random.default_rng(config.seed).bit_generator.state
            return restored

        monkeypatch.setattr(train_module, "restore_training_state", forgetful_restore)
        forgetful = run_training(text=SMALL, out_dir=tmp_path / "c", config=config, resume=tmp_path / "half.npz",
                                 progress=False)
        assert forgetful.step == 2 * N
        assert not np.array_equal(forgetful.params["head.W"], straight.params["head.W"])


def stop_before_step(n):
    """A should_stop that asks the run to stop before its step n + 1 (as a signal arriving then would)."""
    calls = [0]

    def should_stop():
        calls[0] += 1
        return calls[0] > n

    return should_stop


@pytest.mark.parametrize("N", [30, 17, 1])
def test_an_interrupted_cosine_run_resumes_exactly(tmp_path, N):
    """A schedule that depends on the run's length (cosine, with warm-up) resumes exactly when the
    resumed run keeps the interrupted run's bounds: stopped at step N, at an evaluation step or
    between two, and resumed with the same max_steps. The interrupt adds nothing to the record:
    metrics.jsonl and best.npz are those of the uninterrupted run."""
    model = {**MODEL, "dropout": 0.2}
    config = replace(CONFIG, eval_every=10, max_steps=60, lr_schedule="cosine", warmup_steps=5)
    straight = run_training(text=SMALL, out_dir=tmp_path / "a", config=config, model_options=model, progress=False)
    first = run_training(text=SMALL, out_dir=tmp_path / "b", config=config, model_options=model, progress=False,
                         should_stop=stop_before_step(N))
    assert first.interrupted and first.step == N
    assert [ev.step for ev in first.evaluations] == list(range(10, N + 1, 10))
    resumed = run_training(text=SMALL, out_dir=tmp_path / "b", config=config, resume=tmp_path / "b" / "latest.npz",
                           progress=False)
    assert_same_arrays(straight.params, resumed.params)
    assert_same_arrays(arrays_of(tmp_path / "a" / "latest.npz"), arrays_of(tmp_path / "b" / "latest.npz"))
    assert_same_arrays(arrays_of(tmp_path / "a" / "best.npz"), arrays_of(tmp_path / "b" / "best.npz"))

    def record(path):
        return [{k: v for k, v in r.items() if k not in ("elapsed_s", "chars_per_s")} for r in metrics_of(path)]

    assert record(tmp_path / "a" / "metrics.jsonl") == record(tmp_path / "b" / "metrics.jsonl")
    assert len({r["lr"] for r in record(tmp_path / "a" / "metrics.jsonl")}) == 6   # the lr really varies


# --- non-finite losses and gradients ---------------------------------------------------------------

def poison(monkeypatch, at_calls, where: str = "loss") -> list[int]:
    """Make loss_and_grads return a NaN loss (or an inf gradient) on the given calls (1-based),
    and check that Adam is only ever handed finite gradients. Returns the call counter."""
    real = step_module.loss_and_grads
    calls = [0]

    def patched(*args, **kwargs):
        loss, grads, state, dstate = real(*args, **kwargs)
        calls[0] += 1
        if at_calls == "all" or calls[0] in at_calls:
            if where == "loss":
                loss = float("nan")
            else:
                grads["lstm.0.Wh"][1, 2] = np.inf
        return loss, grads, state, dstate

    real_update = step_module.adam_update

    def checked_update(params, grads, state, lr):
        assert all(np.isfinite(g).all() for g in grads.values()), "a non-finite gradient reached Adam"
        return real_update(params, grads, state, lr)

    monkeypatch.setattr(step_module, "loss_and_grads", patched)
    monkeypatch.setattr(step_module, "adam_update", checked_update)
    return calls


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_nonfinite_step_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, where):
    config = replace(CONFIG, eval_every=3, max_steps=20)
    good = run_training(text=CORPUS, out_dir=tmp_path / "good", config=replace(config, max_steps=6), model_options=MODEL,
                        progress=False)
    poison(monkeypatch, {8}, where)
    out = tmp_path / "run"
    with pytest.raises(CharlstmError) as e:
        run_training(text=CORPUS, out_dir=out, config=config, model_options=MODEL, progress=False)
    message = str(e.value)
    assert "step 8" in message and "not applied" in message and str(out / "latest.npz") in message
    assert "\n" not in message
    assert [r["step"] for r in metrics_of(out / "metrics.jsonl")] == [3, 6]
    assert_same_arrays(arrays_of(out / "latest.npz"), arrays_of(good.out_dir / "latest.npz"))
    assert all(np.isfinite(p).all() for p in load_checkpoint(out / "best.npz").params.values())


def test_a_nonfinite_step_through_the_cli(tmp_path, monkeypatch):
    (tmp_path / "c.txt").write_text(CORPUS)
    poison(monkeypatch, {5})
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           *CLI_MODEL, "--eval-every", "2", "--max-steps", "10"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = _after_recipe(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: training diverged at step 5"), lines
    assert step_of(tmp_path / "run" / "latest.npz") == 4


def test_a_nonfinite_first_step_says_there_is_no_checkpoint(tmp_path, monkeypatch):
    poison(monkeypatch, {1})
    with pytest.raises(CharlstmError, match="step 1 .*no checkpoint had been written yet"):
        run_training(text=CORPUS, out_dir=tmp_path / "run", config=replace(CONFIG, max_steps=5), model_options=MODEL,
                     progress=False)
    assert not (tmp_path / "run" / "latest.npz").exists()


def test_skip_mode_skips_the_batch_halves_the_lr_and_logs_it(tmp_path, monkeypatch):
    calls = poison(monkeypatch, {5})
    config = replace(CONFIG, eval_every=4, max_steps=12, on_nonfinite="skip", lr=1e-3)
    result = run_training(text=CORPUS, out_dir=tmp_path / "run", config=config, model_options=MODEL, progress=False)
    assert result.step == 12 and calls[0] == 13          # twelve updates and the skipped batch
    records = metrics_of(tmp_path / "run" / "metrics.jsonl")
    skips = [r for r in records if r.get("event") == "skipped_nonfinite_batch"]
    assert len(skips) == 1 and skips[0]["step"] == 5 and skips[0]["lr_scale"] == 0.5
    assert skips[0]["loss"] == "nan"
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert lrs == {4: 1e-3, 8: 5e-4, 12: 5e-4}
    ckpt = load_checkpoint(tmp_path / "run" / "latest.npz")
    assert ckpt.train["progress"]["lr_scale"] == 0.5        # kept across --resume
    assert all(np.isfinite(p).all() for p in ckpt.params.values())


def test_skip_mode_gives_up_when_every_batch_is_nonfinite(tmp_path, monkeypatch):
    calls = poison(monkeypatch, "all")
    config = replace(CONFIG, max_steps=100, on_nonfinite="skip")
    with pytest.raises(CharlstmError, match=r"step 1 .*11 non-finite batches in a row"):
        run_training(text=CORPUS, out_dir=tmp_path / "run", config=config, model_options=MODEL, progress=False)
    assert calls[0] == train_module.MAX_SKIPS_IN_A_ROW + 1


# --- full and unwritable disks ---------------------------------------------------------------------

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_at_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_savez = np.savez
    saved = {}

    def savez_until_full(f, **arrays):
        if saved:                            # the second save: half a file, then the disk is full
            f.write(b"PK\x03\x04 half a checkpoint")
            enospc()
        real_savez(f, **arrays)

    def remember(ev):
        saved.setdefault("latest", (tmp_path / "run" / "latest.npz").read_bytes())
        saved.setdefault("best", (tmp_path / "run" / "best.npz").read_bytes())

    monkeypatch.setattr(np, "savez", savez_until_full)
    with pytest.raises(CharlstmError) as e:
        run_training(text=CORPUS, out_dir=tmp_path / "run", config=replace(CONFIG, eval_every=3, max_steps=9),
                     model_options=MODEL, progress=False, on_eval=remember)
    message = str(e.value)
    assert "latest.npz" in message and "No space left on device" in message and "untouched" in message
    assert (tmp_path / "run" / "latest.npz").read_bytes() == saved["latest"]
    assert (tmp_path / "run" / "best.npz").read_bytes() == saved["best"]
    assert step_of(tmp_path / "run" / "latest.npz") == 3
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp-" in p.name]


def test_a_full_disk_through_the_cli_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "c.txt").write_text(CORPUS)
    real_savez = np.savez
    calls = [0]

    def savez_until_full(f, **arrays):
        calls[0] += 1
        if calls[0] > 1:
            enospc()
        real_savez(f, **arrays)

    monkeypatch.setattr(np, "savez", savez_until_full)
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           *CLI_MODEL, "--eval-every", "2", "--max-steps", "6"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = _after_recipe(result.stderr)
    assert len(lines) == 1 and "cannot write checkpoint" in lines[0] and "untouched" in lines[0], lines
    assert step_of(tmp_path / "run" / "latest.npz") == 2


def test_a_full_disk_when_copying_best_keeps_the_previous_best(tmp_path, monkeypatch):
    real_copy = shutil.copyfileobj
    copies = [0]

    def copy_until_full(src, dst, *args, **kwargs):
        copies[0] += 1
        if copies[0] > 1:
            dst.write(b"half")
            enospc()
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfileobj", copy_until_full)
    config = replace(CONFIG, eval_every=3, max_steps=9, val_fraction=0.0)   # every evaluation updates best
    with pytest.raises(CharlstmError, match="best.npz.*No space left.*untouched"):
        run_training(text=CORPUS, out_dir=tmp_path / "run", config=config, model_options=MODEL, progress=False)
    assert step_of(tmp_path / "run" / "best.npz") == 3
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("error, needle", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "Read-only")])
def test_an_unwritable_output_directory_is_found_before_training(tmp_path, monkeypatch, error, needle):
    """Tests run as root, which chmod cannot stop, so the failing write is simulated."""
    (tmp_path / "c.txt").write_text(CORPUS)
    real_open = open

    def failing_open(file, *args, **kwargs):
        if Path(file).name.startswith(".write-test"):
            raise OSError(error, os.strerror(error), str(file))
        return real_open(file, *args, **kwargs)

    steps = poison(monkeypatch, set())
    monkeypatch.setattr(sys.modules["charlstm.training.rundir"], "open", failing_open, raising=False)
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           *CLI_MODEL, "--max-steps", "5"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = _after_recipe(result.stderr)
    assert len(lines) == 1 and "cannot write to the output directory" in lines[0] and needle in lines[0], lines
    assert steps[0] == 0, "training started before the output directory was checked"
    assert not (tmp_path / "run").exists(), "a refused start left the directory it created"


def test_a_second_run_on_a_locked_directory_is_refused(tmp_path):
    (tmp_path / "c.txt").write_text(CORPUS)
    out = tmp_path / "run"
    run_training(text=CORPUS, out_dir=out, config=replace(CONFIG, max_steps=2), model_options=MODEL, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with RunDir(out, resume=out / "latest.npz"):     # another process of the run holds the directory
        # (--start-over: a new run that would move the running one's files aside moves nothing)
        for args in (["--resume", str(out / "latest.npz")], ["--max-steps", "3", "--start-over"]):
            result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(out),
                                                   "--quiet", *args])
            assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
            lines = _after_recipe(result.stderr)
            assert len(lines) == 1 and "another charlstm run is writing to" in lines[0], lines
            assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # Released, the directory is usable again.
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(out), "--quiet",
                                           "--resume", str(out / "latest.npz"), "--max-steps", "3"])
    assert result.exit_code == 0, result.output


# --- what a killed run leaves behind -------------------------------------------------------------

def test_leftovers_of_a_killed_run_are_cleaned_and_never_read(tmp_path):
    out = tmp_path / "run"
    config = replace(CONFIG, eval_every=2, max_steps=4)
    run_training(text=CORPUS, out_dir=out, config=config, model_options=MODEL, progress=False)
    good = (out / "latest.npz").read_bytes()
    (out / ".latest.npz.tmp-424242").write_bytes(good[:1000])   # half a checkpoint
    (out / ".best.npz.tmp-77").write_bytes(b"")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "epoch": 0.03, "train_lo')           # a record cut short
    assert step_of(out / "latest.npz") == 4
    run_training(text=CORPUS, out_dir=out, config=replace(config, max_steps=6), resume=out / "latest.npz",
                 progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.npz", "latest.npz", "metrics.jsonl"]
    assert [r["step"] for r in metrics_of(out / "metrics.jsonl")] == [2, 4, 6]


def test_best_is_brought_up_to_date_after_a_kill_between_latest_and_best(tmp_path, monkeypatch):
    class Killed(BaseException):
        pass

    real_promote = RunDir.promote_best
    calls = [0]

    def dies_on_second_call(self):
        calls[0] += 1
        if calls[0] == 2:
            raise Killed
        real_promote(self)

    out = tmp_path / "run"
    config = replace(CONFIG, eval_every=4, max_steps=12, val_fraction=0.0)   # every checkpoint is the best
    monkeypatch.setattr(RunDir, "promote_best", dies_on_second_call)
    with pytest.raises(Killed):
        run_training(text=CORPUS, out_dir=out, config=config, model_options=MODEL, progress=False)
    monkeypatch.undo()
    assert step_of(out / "latest.npz") == 8 and step_of(out / "best.npz") == 4
    run_training(text=CORPUS, out_dir=out, config=replace(config, max_steps=8), resume=out / "latest.npz",
                 progress=False)
    assert step_of(out / "best.npz") == 8
    assert_same_arrays(arrays_of(out / "best.npz"), arrays_of(out / "latest.npz"))
