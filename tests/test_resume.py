"""--resume resumes the run that was running; --init-from starts a new one from its weights.

- The "Resume with:" line printed on an interrupt is run verbatim (paths with spaces) and ends
  bit-identical to the run never interrupted, at the run's own bound.
- The checkpoint remembers the bounds and the reading options (--newline, --encoding-errors);
  --resume uses them, and bounds given anew replace them.
- Another corpus is refused with a line naming the difference; --init-from is the deliberate
  switch: the weights and vocabulary, a fresh optimiser, step 0.
- Options --resume would ignore are refused when given; a damaged or hostile training record is
  one line before the output directory is touched.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm import api, cli
from charlstm.training.checkpoint import load_checkpoint

LINES = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(60))
SMALL = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-length", "8", "--sample-length", "5",
         "--quiet", "--dropout", "0.1", "--lr-schedule", "cosine", "--warmup-steps", "3"]


class StopAfter:
    """Stands in for api.StopOnSignals: a Ctrl-C that arrives before step n + 1."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self):
        self.calls += 1
        return self.calls > self.n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def invoke(root: Path, args, monkeypatch=None, stop_after=None):
    if stop_after is not None:
        monkeypatch.setattr(api, "StopOnSignals", lambda: StopAfter(stop_after))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(cli.main, [str(a) for a in args])
    finally:
        os.chdir(cwd)
        if stop_after is not None:
            monkeypatch.undo()
    return result


def arrays_of(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "meta"}


def assert_same_arrays(a: Path, b: Path) -> None:
    a, b = arrays_of(a), arrays_of(b)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def record(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "chars_per_s")}
            for line in path.read_text().splitlines()]


def step_of(path: Path) -> int:
    return load_checkpoint(path).train["progress"]["step"]


@pytest.mark.parametrize("bound, at", [(["--max-steps", "40"], 13), (["--epochs", "0.3"], 7)])
def test_the_printed_resume_command_runs_as_printed_and_resumes_exactly(tmp_path, monkeypatch, bound, at):
    (tmp_path / "sp ace.txt").write_text(LINES.replace("\n", "\r\n"))
    args = ["train", "sp ace.txt", *SMALL, "--eval-every", "5", "--newline", "normalize", *bound]
    straight = invoke(tmp_path, [*args, "--out", "straight"])
    assert straight.exit_code == 0, straight.output
    first = invoke(tmp_path, [*args, "--out", "o sp2"], monkeypatch, stop_after=at)
    assert first.exit_code == 130, first.output
    line = first.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Interrupted at step {at}; saved o sp2/latest.npz. Resume with: charlstm train ")
    printed = shlex.split(line.split("Resume with: ")[1])
    assert printed[:2] == ["charlstm", "train"] and "sp ace.txt" in printed and "o sp2/latest.npz" in printed
    resumed = invoke(tmp_path, printed[1:])          # verbatim, the program's name aside
    assert resumed.exit_code == 0, resumed.output
    assert step_of(tmp_path / "o sp2" / "latest.npz") == step_of(tmp_path / "straight" / "latest.npz") > at
    assert_same_arrays(tmp_path / "o sp2" / "latest.npz", tmp_path / "straight" / "latest.npz")
    assert_same_arrays(tmp_path / "o sp2" / "best.npz", tmp_path / "straight" / "best.npz")
    assert record(tmp_path / "o sp2" / "metrics.jsonl") == record(tmp_path / "straight" / "metrics.jsonl")


def test_bounds_given_on_resume_replace_the_runs(tmp_path):
    out = tmp_path / "run"
    charlstm.train(text=LINES, out_dir=out, hidden_size=8, num_layers=1, batch_size=2, seq_length=8, max_steps=4,
                   eval_every=2, sample_length=0, progress=False)
    model = charlstm.train(text=LINES, out_dir=out, resume=out / "latest.npz", progress=False)
    assert model.step == 4                           # the run's own bound: nothing left to do
    model = charlstm.train(text=LINES, out_dir=out, resume=out / "latest.npz", max_steps=6, progress=False)
    assert model.step == 6
    assert load_checkpoint(out / "latest.npz").train["config"]["max_steps"] == 6


def test_the_api_refuses_what_a_resumed_run_would_ignore_by_its_arguments_names(tmp_path):
    out = tmp_path / "run"
    charlstm.train(text=LINES, out_dir=out, hidden_size=8, num_layers=1, batch_size=2, seq_length=8, max_steps=2,
                   sample_length=0, progress=False)
    with pytest.raises(charlstm.CharlstmError, match=r"^hidden_size, lr: these come from the checkpoint"):
        charlstm.train(text=LINES, out_dir=out, resume=out / "latest.npz", lr=0.1, hidden_size=8, progress=False)
    with pytest.raises(charlstm.CharlstmError, match=r"^num_layers: the model and its vocabulary come from"):
        charlstm.train(text=LINES, out_dir=tmp_path / "new", init_from=out / "latest.npz", num_layers=2,
                       progress=False)
    assert load_checkpoint(out / "latest.npz").train["progress"]["step"] == 2


def test_the_reading_options_belong_to_the_run(tmp_path):
    (tmp_path / "crlf.txt").write_text(LINES.replace("\n", "\r\n"))
    base = ["train", "crlf.txt", *SMALL, "--max-steps", "3", "--eval-every", "3", "--out", "run"]
    assert invoke(tmp_path, [*base, "--newline", "normalize"]).exit_code == 0
    saved = load_checkpoint(tmp_path / "run" / "latest.npz")
    assert {k: saved.train["corpus"][k] for k in ("newline", "encoding_errors")} == \
        {"newline": "normalize", "encoding_errors": "strict"}
    assert "\r" not in saved.vocab.symbols and "\r\n" not in saved.vocab.symbols
    # Read with its own --newline normalize, the corpus is the run's (no CR to be unknown).
    result = invoke(tmp_path, ["train", "crlf.txt", "--out", "run", "--resume", "run/latest.npz", "--max-steps", "4",
                               "--quiet"])
    assert result.exit_code == 0, result.output
    assert step_of(tmp_path / "run" / "latest.npz") == 4


@pytest.mark.parametrize("extra, needles", [
    (["--batch-size", "4"], ["--batch-size", "come from the checkpoint"]),
    (["--lr", "0.1", "--seed", "5"], ["--lr, --seed"]),
    (["--newline", "normalize"], ["--newline"]),
    (["--encoding-errors", "replace"], ["--encoding-errors"]),
    (["--unit", "codepoint"], ["--unit"]),
    (["--min-count", "2"], ["--min-count"]),
    (["--eval-every", "100"], ["--eval-every"]),
    (["--hidden", "4"], ["--hidden"]),
    (["--init-from", "run/latest.npz"], ["--init-from"]),
])
def test_options_resume_would_ignore_are_refused(tmp_path, extra, needles):
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "2", "--out", "run"]).exit_code == 0
    before = (tmp_path / "run" / "latest.npz").read_bytes()
    result = invoke(tmp_path, ["train", "c.txt", "--out", "run", "--resume", "run/latest.npz", *extra])
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
    assert (tmp_path / "run" / "latest.npz").read_bytes() == before


def test_help_says_which_options_resume_takes():
    text = " ".join(CliRunner().invoke(cli.main, ["train", "--help"]).output.split())
    assert "Only --max-steps, --max-time and --epochs may be given" in text
    assert "every other training option is refused" in text and "--init-from" in text


@pytest.mark.parametrize("change, needles", [
    (lambda t: t + "one line more\n", ["is not the corpus", "3,184 bytes, the run's 3,170", "--init-from"]),
    (lambda t: t.replace("fox", "cat", 1), ["is not the corpus", "the same size, other content", "sha256"]),
])
def test_another_corpus_is_refused_naming_the_difference(tmp_path, change, needles):
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "2", "--out", "run"]).exit_code == 0
    (tmp_path / "other.txt").write_text(change(LINES))
    result = invoke(tmp_path, ["train", "other.txt", "--out", "run", "--resume", "run/latest.npz"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: other.txt: ")
    assert all(n in lines[0] for n in needles), lines


def test_init_from_fine_tunes_from_the_weights_only(tmp_path):
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "6", "--out", "first"]).exit_code == 0
    (tmp_path / "other.txt").write_text("the lazy dog jumps over the quick brown fox\n" * 40)
    result = invoke(tmp_path, ["train", "other.txt", "--out", "second", "--init-from", "first/latest.npz",
                               "--batch-size", "2", "--seq-length", "8", "--max-steps", "0", "--quiet",
                               "--sample-length", "0"])
    assert result.exit_code == 0, result.output
    first, second = load_checkpoint(tmp_path / "first" / "latest.npz"), load_checkpoint(tmp_path / "second" /
                                                                                           "latest.npz")
    for key in first.params:                         # step 0 of the new run: the weights as they were
        assert np.array_equal(first.params[key], second.params[key]), key
    assert second.vocab == first.vocab and second.config == first.config
    assert second.train["progress"]["step"] == 0 and second.train["adam_step"] == 0
    assert not second.extra["adam.m.head.W"].any()          # a fresh optimiser
    assert second.train["init_from"] == "first/latest.npz"
    result = invoke(tmp_path, ["train", "other.txt", "--out", "third", "--init-from", "first/latest.npz",
                               "--hidden", "16"])
    assert result.exit_code == 1 and "--hidden" in result.stderr and "--init-from" in result.stderr


# --- damaged and hostile training records -----------------------------------------------------------

def _edit(train: dict, path: str, value):
    keys = path.split(".")
    target = train
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


@pytest.mark.parametrize("path, value, needles", [
    ("progress.step", "12", ["'step'", "whole number"]),
    ("progress.step", -3, ["'step'", ">= 0"]),
    ("progress.step", 1.5, ["'step'"]),
    ("progress.lr_scale", "half", ["'lr_scale'"]),
    ("progress.lr_scale", 0, ["'lr_scale'", "positive"]),
    ("progress.best_val", "low", ["'best_val'"]),
    ("progress.best_step", 99, ["'best_step'", "<= 2"]),
    ("progress.elapsed_s", None, ["'elapsed_s'"]),
    ("progress.window_steps", [1], ["'window_steps'"]),
    ("progress.chunk", 10 ** 9, ["chunk 1,000,000,000", "past the pass"]),
    ("progress.surprise", 1, ["unknown fields", "surprise"]),
    ("progress", [1, 2], ["'progress'", "not a JSON object"]),
    ("adam_step", "many", ["'adam_step'"]),
    ("rng", KeyError, ["lacks 'rng'"]),
    ("rng.bit_generator", "MT19937", ["'bit_generator'", "PCG64"]),
    ("rng.state.state", -1, ["'state'"]),
    ("rng.state.inc", 2 ** 200, ["'inc'"]),
    ("rng.uinteger", 2 ** 40, ["'uinteger'"]),
    ("config.batch_size", "2", ["'batch_size'", "whole number"]),
    ("config.batch_size", 1.5, ["'batch_size'"]),
    ("config.lr", "fast", ["'lr'"]),
    ("config.lr_decay", -1, ["--lr-decay"]),
    ("config.seed", -1, ["--seed"]),
    ("config.max_steps", 1e400, ["'max_steps'"]),
    ("config.unit", 3, ["'unit'"]),
    ("config", "nope", ["training configuration", "not a JSON object"]),
    ("corpus.newline", "sideways", ["'newline'", "keep, normalize"]),
    ("corpus.unit", "word", ["'unit'", "grapheme, codepoint"]),
    ("corpus.min_count", 0, ["'min_count'", ">= 1"]),
    ("corpus.hash", 7, ["'hash'"]),
    ("corpus.bytes", "big", ["'bytes'"]),
])
def test_a_damaged_training_record_is_one_line_before_the_directory_exists(tmp_path, path, value, needles):
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "2", "--out", "run"]).exit_code == 0
    with np.load(tmp_path / "run" / "latest.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    _edit(meta["train"], path, value)
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **{**arrays, "meta": np.array(json.dumps(meta))})
    result = invoke(tmp_path, ["train", "c.txt", "--out", "new", "--resume", "bad.npz"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: bad.npz"), lines
    assert all(n in lines[0] for n in needles), lines
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("key", ["adam.m.head.W", "adam.v.lstm.0.Wx", "state.c"])
def test_nan_in_the_optimiser_or_state_is_called_damage_not_a_learning_rate(tmp_path, key):
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "2", "--out", "run"]).exit_code == 0
    with np.load(tmp_path / "run" / "latest.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = np.nan
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **arrays)
    result = invoke(tmp_path, ["train", "c.txt", "--out", "run", "--resume", "bad.npz"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert key in lines[0] and "damaged" in lines[0] and "--lr" not in lines[0], lines


def test_a_checkpoint_from_before_data_directories_resumes_with_its_reading_options(tmp_path):
    """Checkpoints written before data directories kept the reading options apart, beside a digest
    of the decoded text: they resume, read as they were."""
    (tmp_path / "crlf.txt").write_text(LINES.replace("\n", "\r\n"))
    assert invoke(tmp_path, ["train", "crlf.txt", *SMALL, "--max-steps", "2", "--out", "run",
                             "--newline", "normalize"]).exit_code == 0
    with np.load(tmp_path / "run" / "latest.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["train"]["reading"] = {"newline": "normalize", "encoding_errors": "strict"}
    meta["train"]["corpus"] = {"bytes": 123, "sha256": "0" * 64}
    with open(tmp_path / "old.npz", "wb") as f:
        np.savez(f, **{**arrays, "meta": np.array(json.dumps(meta))})
    result = invoke(tmp_path, ["train", "crlf.txt", "--out", "old-run", "--resume", "old.npz", "--max-steps", "3",
                               "--quiet"])
    assert result.exit_code == 0, result.output
    resumed = load_checkpoint(tmp_path / "old-run" / "latest.npz")
    assert resumed.train["progress"]["step"] == 3 and resumed.train["corpus"]["newline"] == "normalize"


def _with_elapsed(tmp_path, seconds: float) -> Path:
    """run/latest.npz as a checkpoint whose run has trained `seconds` already."""
    with np.load(tmp_path / "run" / "latest.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["train"]["progress"]["elapsed_s"] = seconds
    path = tmp_path / f"elapsed-{seconds:g}.npz"
    with open(path, "wb") as f:
        np.savez(f, **{**arrays, "meta": np.array(json.dumps(meta))})
    return path


def test_max_time_bounds_the_whole_run(tmp_path):
    """--max-time counts the run's time over every invocation, as --max-steps counts steps (and
    the schedule's clock is the same count): a run that has used its time trains no more."""
    (tmp_path / "c.txt").write_text(LINES)
    assert invoke(tmp_path, ["train", "c.txt", *SMALL, "--max-steps", "2", "--out", "run"]).exit_code == 0
    spent = _with_elapsed(tmp_path, 1000.0)
    result = invoke(tmp_path, ["train", "c.txt", "--out", "run", "--resume", spent.name, "--max-time", "3"])
    assert result.exit_code == 0, result.output
    assert step_of(tmp_path / "run" / "latest.npz") == 2          # no time left: no step
