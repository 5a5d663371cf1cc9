"""The `charlstm` command through click's CliRunner: train -> sample -> eval on a tiny corpus, eval's
JSON, sampling options, streaming, and `python -m charlstm`. (Bad inputs: tests/test_errors.py.)"""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm.cli import main
from charlstm.model import ModelConfig, init_params
from charlstm.data.vocab import Vocab


def corpus_text(n=80):
    rng = np.random.default_rng(0)
    words = ["one", "two", "three", "four"]
    return "".join(" ".join(rng.choice(words, size=3)) + "\n" for _ in range(n))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    result = CliRunner().invoke(main, [
        "train", str(corpus), "--out", str(root / "run"), "--hidden", "12", "--layers", "1",
        "--batch-size", "4", "--seq-length", "16", "--max-steps", "20", "--eval-every", "10",
        "--lr", "0.01", "--quiet"])
    assert result.exit_code == 0, result.output
    return root


def test_train_writes_the_run(run_dir):
    run = run_dir / "run"
    assert {p.name for p in run.iterdir()} >= {"latest.npz", "best.npz", "metrics.jsonl"}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20]
    model = charlstm.load(run / "latest.npz")
    assert model.config.hidden_size == 12 and model.config.num_layers == 1


def test_train_reports_validation_on_stderr(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(40), encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(tmp_path / "r"), "--hidden", "4",
                                       "--layers", "1", "--batch-size", "2", "--seq-length", "8",
                                       "--max-steps", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "step 2: validation" in result.stderr and "nats/char" in result.stderr


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sample_matches_the_api_and_respects_the_seed(run_dir):
    ckpt = run_dir / "run" / "best.npz"
    out = invoke("sample", ckpt, "--length", 60, "--seed", 3, "--prime", "one ", "--temperature", 0.9)
    expected = charlstm.load(ckpt).sample(60, temperature=0.9, prime="one ", seed=3)
    assert out == expected + "\n"
    assert invoke("sample", ckpt, "--length", 60, "--seed", 3, "--prime", "one ", "--temperature", 0.9) == out
    assert invoke("sample", ckpt, "--length", 60, "--seed", 4, "--prime", "one ", "--temperature", 0.9) != out
    greedy = invoke("sample", ckpt, "--length", 40, "--temperature", 0)
    assert greedy == invoke("sample", ckpt, "--length", 40, "--temperature", 0, "--seed", 99)


def test_sample_num_samples_and_stop(run_dir):
    ckpt = run_dir / "run" / "best.npz"
    out = invoke("sample", ckpt, "--num-samples", 4, "--stop", "\\n", "--seed", 1, "--length", 200)
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 5             # four samples, one per line
    assert lines[:4] == charlstm.load(ckpt).sample(200, temperature=0.8, num_samples=4, stop="\n", seed=1)
    unstopped = invoke("sample", ckpt, "--num-samples", 2, "--seed", 1, "--length", 30)
    assert unstopped.count("\n") >= 2


def fixed_checkpoint(path, symbols, probs):
    """A model that draws every symbol with fixed probabilities, saved as a checkpoint."""
    vocab = Vocab(tuple(symbols))
    config = ModelConfig(vocab_size=len(vocab), hidden_size=2, num_layers=1)
    params = init_params(config, np.random.default_rng(0), np.float64)
    params["head.W"][:] = 0
    params["head.b"][:] = np.log(probs)
    charlstm.Model(params, config, vocab).save(path)
    return charlstm.load(path)


@pytest.mark.parametrize("stop_arg,stop", [("\\n", "\n"), ("\u00e9\\n", "\u00e9\n"), ("\u00e9", "\u00e9"),
                                           ("\U0001F44D\\n", "\U0001F44D\n")])
def test_sample_stop_escapes_with_non_ascii_text(tmp_path, stop_arg, stop):
    model = fixed_checkpoint(tmp_path / "m.npz", ["a", "\u00e9", "\U0001F44D", "\n"], [0.3, 0.3, 0.1, 0.3])
    for seed in range(4):
        out = invoke("sample", tmp_path / "m.npz", "--stop", stop_arg, "--seed", seed, "--length", 300,
                     "--temperature", 1)
        expected = model.sample(300, temperature=1, stop=stop, seed=seed)
        free = model.sample(300, temperature=1, seed=seed)
        assert stop in free                                # so the stop text really ends the sample
        assert out == expected + "\n"
        assert expected == free[:free.index(stop)]


class RecordingStdout:
    """Records writes and flushes, to see that the sampler prints as it goes."""

    def __init__(self):
        self.events = []

    def write(self, s):
        self.events.append(("write", s))
        return len(s)

    def flush(self):
        self.events.append(("flush", None))


def test_sample_streams_to_stdout(tmp_path, monkeypatch):
    fixed_checkpoint(tmp_path / "m.npz", ["a", "b", "\n"], [0.45, 0.45, 0.1])
    recorder = RecordingStdout()
    monkeypatch.setattr(sys, "stdout", recorder)
    main.main(["sample", str(tmp_path / "m.npz"), "--length", "40", "--seed", "0", "--prime", "ab"],
              standalone_mode=False)
    writes = [s for kind, s in recorder.events if kind == "write"]
    assert writes[0] == "ab" and len(writes) >= 41               # the prime, then symbol by symbol
    assert recorder.events[1] == ("flush", None)                  # each piece is flushed at once
    assert sum(kind == "flush" for kind, _ in recorder.events) >= 41
    assert len("".join(writes)) == 2 + 40 + 1


def test_eval_text_and_json(run_dir):
    ckpt = run_dir / "run" / "best.npz"
    held = run_dir / "held.txt"
    held.write_text(corpus_text(20), encoding="utf-8")
    data = json.loads(invoke("eval", ckpt, held, "--json"))
    assert set(data) == {"nats_per_char", "bits_per_char", "symbols"}
    api = charlstm.evaluate(ckpt, path=held)
    assert data == pytest.approx(api)
    assert data["symbols"] == len(held.read_text()) - 1
    assert data["bits_per_char"] == pytest.approx(data["nats_per_char"] / np.log(2))
    text = invoke("eval", ckpt, held)
    assert f"{data['nats_per_char']:.4f} nats/char" in text and f"({data['symbols']} symbols)" in text


def test_python_dash_m_help():
    done = subprocess.run([sys.executable, "-m", "charlstm", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("train", "sample", "eval"):
        assert command in done.stdout
    assert "Usage" in done.stdout


def test_a_bar_written_to_a_log_file_redraws_seldom(tmp_path):
    """Training with its output going to a file (nohup, a scheduler, CI): the bar is drawn when it
    starts and when it ends, not at every tenth of a second, which over an hour would be tens of
    thousands of lines of log. In a terminal or a notebook it redraws itself as ever."""
    import io
    from tqdm.auto import tqdm as text_bar
    from charlstm.progress import LOG_REDRAW_S, bar_options

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert bar_options(text_bar, io.StringIO()) == {"mininterval": LOG_REDRAW_S, "maxinterval": LOG_REDRAW_S}
    assert bar_options(text_bar, Terminal()) == {}
    notebook_bar = type("tqdm_notebook", (text_bar,), {"__module__": "tqdm.notebook"})
    assert bar_options(notebook_bar, io.StringIO()) == {}

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(), encoding="utf-8")
    log = tmp_path / "log.txt"
    with open(log, "w") as stderr:
        done = subprocess.run([sys.executable, "-m", "charlstm", "train", str(corpus), "--out", str(tmp_path / "run"),
                               "--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-length", "8",
                               "--max-steps", "300", "--eval-every", "1000"], stderr=stderr, stdout=subprocess.PIPE,
                              timeout=120)
    assert done.returncode == 0
    text = log.read_text(encoding="utf-8")
    redraws = text.count("/300 [")     # the start and the end
    assert "300/300" in text and 1 <= redraws <= 3, text
    assert text.count("300/300") == 1, text              # the final bar once, not again under a message
    assert "\nstep 300: validation" in text or text.startswith("step 300"), text
