"""charlstm's default recipe against PyTorch LSTMs, side by side, at equal wall-clock time.

    python scripts/recipe.py CORPUS [NAME=CORPUS ...] [--max-time 600 | --max-steps N] [--out runs/recipe]
                             [--only charlstm,torch-recipe,torch-plain] [--seed 0]
                             [--val-fraction 0.1] [--min-count 1] [-- more `charlstm train` options]

For each corpus (a UTF-8 text file; NAME=PATH names it, else the file's stem names it), one right
after the other, each for the same --max-time seconds of wall-clock time (or, with --max-steps,
the same number of optimiser steps, the schedule's clock then the step: what a step learns, a
figure the machine's load does not move):

  charlstm      `python -m charlstm train CORPUS --max-time T --val-fraction F --seed S --out
                DIR/NAME/charlstm --quiet` (a subprocess: exactly what a user runs; every other
                setting is the library's default, options after `--` are added), then `python -m
                charlstm eval DIR/NAME/charlstm/best.npz DIR/NAME/heldout.txt --json`. best.npz is
                what the README tells a user to sample from (the checkpoint of the lowest periodic
                validation estimate; under the cosine schedule it is almost always the last one).
  torch-recipe  a PyTorch nn.LSTM at charlstm's own recipe, read from charlstm's TrainConfig and
                ModelConfig defaults and the settings charlstm's recipe chooses for the corpus's
                size and the budget (charlstm.training.recipe.choose; at 600 s today: 3 x 256,
                B=32, T=100, Adam lr 3e-3 with a cosine decay to lr_floor = a tenth, no warm-up,
                gradient-norm clipping at 5, dropout 0.2, or 0 where the budget passes over the
                training data less than once, as on the site-packages corpus).
                Input: nn.Embedding(V, E) with E = the hidden size (256), PyTorch's usual
                character-LSTM front end (charlstm's one-hot first layer is a lookup of a row of
                its V x 4H input matrix instead). Dropout where charlstm puts it: on the output of
                every layer, none on the input, that is nn.LSTM(dropout=p) between layers and
                nn.Dropout(p) before the nn.Linear head. The learning rate is charlstm's own
                function (charlstm.nn.optim.learning_rate) at charlstm's clock: under --max-time
                the schedule's fraction is wall time since the loop started / max-time, periodic
                evaluations included. PyTorch's default initialisation throughout (charlstm's
                differs: forget-gate bias 1, first-layer rows uniform in +-1).
  torch-plain   a plain PyTorch LSTM, fixed whatever charlstm's defaults: 3 x 256 nn.LSTM, one-hot
                input (F.one_hot, input_size V), no dropout, Adam 2e-3 constant, clipping at 5,
                B=32, T=100.
  torch-onehot  a probe, run only when --only names it: torch-recipe with charlstm's one-hot
                input instead of nn.Embedding (is the embedding why torch-recipe learns more per
                step?).
  torch-transformer  run only when --only names it: a small character transformer at nanoGPT's
                published CPU settings for shakespeare_char (scripts/char_transformer.py: 4 layers,
                4 heads, width 128, context 64, batch 12, lr 1e-3, no dropout); its held-out figure
                predicts each symbol from 32 to 64 symbols before it.

Shared by all three: the same ids (charlstm's own reading of the file, Vocab and split: the
held-out part is exactly the last --val-fraction of the symbol ids, as `charlstm train
--val-fraction` holds out), truncated BPTT over B equal contiguous streams of the training ids with
the state carried from chunk to chunk and reset at each new pass (charlstm's own make_streams),
the seed (charlstm's --seed; torch.manual_seed for each PyTorch model), and the clock: charlstm
checks `--max-time` before each step against wall time since its loop started, periodic
evaluations (and checkpoint saves) included, then evaluates once more at the end; the PyTorch runs
do the same with their own evaluations. torch.set_num_threads(os.cpu_count()).

Validation curves. charlstm evaluates every --eval-every (200) steps on the whole held-out part,
read as B parallel streams from a zero state; its metrics.jsonl gives the curve. The PyTorch runs
estimate the same way (the same function, B streams of T, zero state) on the first --val-symbols
symbols of the held-out part (default 500,000, more than the whole held-out part of every study
corpus but the site-packages one), at the same cadence in wall time as charlstm's evaluations of
this corpus (their median spacing; where charlstm was not run or made no periodic evaluation,
every eval_every steps, charlstm's own rule), and keep the weights of the lowest estimate, as
best.npz does.

Exact evaluation after each run, of the whole held-out part: every held-out symbol but the first
predicted once, from a zero state at the start of the held-out part and the state of everything
before it in the held-out part, in chunks of 256 with the state carried (charlstm eval's method,
batch 1). For charlstm the held-out ids are decoded to DIR/NAME/heldout.txt, checked to read back
to exactly those ids, and given to `charlstm eval`; the PyTorch models run the same pass on the ids.

Output in --out (default runs/recipe): results.json (per corpus and side: exact nats/char and
bits/char, steps, characters per second, time spent on periodic evaluation, the curve
[elapsed_s, step, val_nats]), report.html (per corpus an inline SVG of validation nats/char against
wall time, one line per side, the exact figure as a ring at the end, and a table), table.md, and
the Markdown table the README carries, printed at the end. chars/s is characters trained per
second of the run's wall time (evaluations included, as the budget counts them).

The four study corpora, all buildable by any user (sizes as built on this machine):

  tinyshakespeare  ../shared/data/tinyshakespeare.txt as it is (1,115,394 symbols, 65 distinct)
  tweets           charlstm corpus tweets ../shared/data/tweets/condensed_*.json -o corpora-study/tweets.txt
                   (one tweet a line, oldest first, retweets and exact duplicates dropped:
                   32,727 tweets, 3,687,493 bytes, 3,670,776 symbols, 286 distinct; the README's
                   ../shared/data/tweets.txt keeps the 134 duplicates and is 3,699,444 bytes)
  stdlib           charlstm corpus code --python-stdlib -o corpora-study/stdlib.txt
                   (the quickstart's corpus: byte for byte what `charlstm train` with no CORPUS
                   writes to OUT/corpus.txt; 333 files, 4,932,884 bytes, 106 distinct symbols)
  site-packages    charlstm corpus code "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \\
                       --max-bytes 50000000 --exclude tests --exclude test --exclude torch \\
                       --exclude sympy --exclude scipy --exclude moto --exclude numpy \\
                       --exclude networkx --exclude _vendor --exclude cfnlint --exclude onnxruntime \\
                       -o corpora-study/site-packages.txt
                   (the installed packages' .py sources, less test suites, vendored copies and the
                   six largest single libraries so that no one package dominates: 4,061 files,
                   44,523,233 bytes, 44,490,993 symbols, but 6,743 distinct, most seen once or
                   twice; --min-count 20 keeps 204 of them and maps 0.025 % of the text to the
                   unknown symbol. Another machine's site-packages gives another corpus.)

    python scripts/recipe.py ../shared/data/tinyshakespeare.txt tweets=corpora-study/tweets.txt \\
        stdlib=corpora-study/stdlib.txt --max-time 600 --out runs/recipe
    python scripts/recipe.py site-packages=corpora-study/site-packages.txt --min-count 20 \\
        --max-time 600 --out runs/recipe-site-packages
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import html
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))      # this checkout's charlstm, also for the subprocesses below

from charlstm.data.streams import make_streams, split_ids  # noqa: E402
from charlstm.data.text import read_text  # noqa: E402
from charlstm.data.vocab import Vocab, build_and_encode  # noqa: E402
from charlstm.errors import CharlstmError  # noqa: E402
from charlstm.model import ModelConfig  # noqa: E402
from charlstm.nn.optim import learning_rate  # noqa: E402
from charlstm.training.config import TrainConfig  # noqa: E402
from charlstm.training.evaluation import nats_to_bits  # noqa: E402
from charlstm.training.recipe import choose  # noqa: E402

SIDES = ("charlstm", "torch-recipe", "torch-plain")
PROBES = ("torch-onehot", "torch-transformer")   # run only when --only names them
LABELS = {"charlstm": "charlstm", "torch-recipe": "torch at charlstm's recipe", "torch-plain": "plain torch",
          "torch-onehot": "torch at charlstm's recipe, one-hot input",
          "torch-transformer": "a small character transformer (nanoGPT's CPU settings)"}
COLOURS = {"charlstm": "#d62728", "torch-recipe": "#1f77b4", "torch-plain": "#7f7f7f"}
EXACT_CHUNK = 256          # charlstm eval's chunk (the state is carried, so it does not change the figure)
SETTLE_S = 1.0             # between runs: lets the last run's BLAS / OpenMP worker threads go idle
# Options of `charlstm train` that the study sets itself, or that would make the runs unequal.
STUDY_OPTIONS = ("--out", "--max-time", "--val-fraction", "--seed", "--unit", "--min-count", "--resume",
                 "--init-from", "--max-steps", "--epochs")


# --- the data: charlstm's own reading, vocabulary and split ----------------------------------------

@dataclass
class Corpus:
    name: str
    path: Path


@dataclass
class Data:
    vocab: Vocab
    ids: np.ndarray
    train_ids: np.ndarray
    heldout_ids: np.ndarray


def parse_corpus(arg: str) -> Corpus:
    """NAME=PATH, or PATH (named by its stem)."""
    name, sep, rest = arg.partition("=")
    if sep and name and "/" not in name and not Path(arg).exists():
        return Corpus(name, Path(rest))
    return Corpus(Path(arg).stem, Path(arg))


def split_corpus(text: str, val_fraction: float, unit: str | None = None, min_count: int | None = None) -> Data:
    """The ids `charlstm train` makes of text (build_and_encode with its unit and min-count) and its
    split: the held-out part is the last val_fraction of the ids (int(n * fraction) of them)."""
    defaults = TrainConfig()
    vocab, ids = build_and_encode(text, unit or defaults.unit, min_count or defaults.min_count)
    train_ids, heldout_ids = split_ids(ids, val_fraction)
    return Data(vocab, ids, train_ids, heldout_ids)


def write_heldout(path: Path, vocab: Vocab, heldout_ids: np.ndarray) -> None:
    """Write the held-out ids as text and check that charlstm reads it back to exactly those ids
    (as `charlstm eval` reads a file: read_text, then encode with unknown symbols allowed)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(vocab.decode(heldout_ids))
    back = vocab.encode(read_text(path, max_bytes=None), unknown="unk")
    if len(back) != len(heldout_ids) or not np.array_equal(back, heldout_ids):
        raise CharlstmError(f"{path}: the held-out text does not read back to the held-out ids")


def trained_chars(streams, steps: int) -> int:
    """Characters predicted by `steps` training steps over streams (a pass's last chunk is short)."""
    T, lengths = streams.seq_length, streams.lengths.astype(np.int64)
    per_chunk = [int(np.clip(lengths - k * T, 0, T).sum()) for k in range(streams.chunks_per_pass)]
    passes, rest = divmod(steps, streams.chunks_per_pass)
    return passes * int(lengths.sum()) + sum(per_chunk[:rest])


# --- the PyTorch side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TorchRecipe:
    name: str
    embedding: bool           # nn.Embedding(V, hidden) input, else one-hot
    hidden_size: int
    num_layers: int
    dropout: float
    batch_size: int
    seq_length: int
    lr: float
    lr_schedule: str
    lr_floor: float
    warmup_steps: int
    lr_decay: float
    lr_decay_every: int
    grad_clip: float


def torch_recipes(train_symbols: int | None = None, max_time: float | None = None,
                  max_steps: int | None = None) -> dict[str, TorchRecipe]:
    """torch-recipe follows charlstm's defaults and, given the corpus's training symbols and the
    budget, the settings charlstm's recipe chooses for them (charlstm.training.recipe.choose:
    the model's size and dropout, the learning rate), so the study follows them if they change;
    torch-plain is fixed."""
    t, m = TrainConfig(), ModelConfig(vocab_size=1)
    model = {"num_layers": m.num_layers, "hidden_size": m.hidden_size, "dropout": m.dropout}
    lr = t.lr
    if train_symbols is not None:
        chosen = choose(train_symbols, t.batch_size, t.seq_length, max_time=max_time, max_steps=max_steps)
        model.update(chosen.model)
        lr = chosen.train.get("lr", lr)
    return {
        "torch-recipe": TorchRecipe("torch-recipe", True, model["hidden_size"], model["num_layers"], model["dropout"],
                                    t.batch_size, t.seq_length, lr, t.lr_schedule, t.lr_floor, t.warmup_steps,
                                    t.lr_decay, t.lr_decay_every, t.grad_clip),
        "torch-plain": TorchRecipe("torch-plain", False, 256, 3, 0.0, 32, 100, 2e-3, "constant", 0.1, 0, 0.97,
                                   1000, 5.0),
        # a probe of why torch-recipe learns more per step: the same, with charlstm's one-hot input
        "torch-onehot": TorchRecipe("torch-onehot", False, model["hidden_size"], model["num_layers"],
                                    model["dropout"], t.batch_size, t.seq_length, lr, t.lr_schedule, t.lr_floor,
                                    t.warmup_steps, t.lr_decay, t.lr_decay_every, t.grad_clip),
    }


def make_torch_model(recipe: TorchRecipe, vocab_size: int):
    import torch
    from torch import nn
    from torch.nn import functional as F

    class CharLSTM(nn.Module):
        """ids (T, B) -> logits (T, B, V); state (h, c) or None. Dropout on every layer's output."""

        def __init__(self):
            super().__init__()
            H, L, p = recipe.hidden_size, recipe.num_layers, recipe.dropout
            self.vocab_size = vocab_size
            self.embed = nn.Embedding(vocab_size, H) if recipe.embedding else None
            self.rnn = nn.LSTM(H if recipe.embedding else vocab_size, H, L, dropout=p if L > 1 else 0.0)
            self.drop = nn.Dropout(p)
            self.head = nn.Linear(H, vocab_size)

        def forward(self, ids, state=None):
            x = self.embed(ids) if self.embed is not None else F.one_hot(ids, self.vocab_size).to(torch.float32)
            out, state = self.rnn(x, state)
            return self.head(self.drop(out)), state

    return CharLSTM()


def torch_loss_over(model, ids: np.ndarray, streams: int, seq_length: int) -> tuple[float, int]:
    """charlstm's evaluate_ids for a PyTorch model: (mean nats per predicted symbol, count). ids are
    cut into `streams` contiguous parts read in parallel from a zero state, chunk by chunk with the
    state carried; streams=1 is exact (every symbol but the first predicted from all before it)."""
    import torch
    from torch.nn import functional as F
    streams = max(1, min(streams, len(ids) - 1))
    seq_length = max(1, min(seq_length, (len(ids) - 1) // streams))
    chunks = make_streams(ids, streams, seq_length)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0.0, None
    with torch.inference_mode():
        for index in range(chunks.chunks_per_pass):
            inputs, targets, weights = chunks.chunk(index)
            logits, state = model(torch.from_numpy(inputs.astype(np.int64)), state)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                  torch.from_numpy(targets.astype(np.int64)).reshape(-1), reduction="none")
            if weights is None:
                total += float(nll.double().sum())
                count += nll.numel()
            else:
                w = torch.from_numpy(weights.reshape(-1)).double()
                total += float((nll.double() * w).sum())
                count += float(w.sum())
    model.train(was_training)
    return total / count, int(count)


def train_torch(recipe: TorchRecipe, data: Data, max_time: float | None, seed: int, eval_interval: float | None,
                val_symbols: int | None, log=print, threads: int | None = None, max_steps: int | None = None) -> dict:
    """Train one PyTorch model for max_time seconds as charlstm's loop does; return its record.
    eval_interval: seconds between validation estimates (None: every TrainConfig.eval_every
    steps, charlstm's own rule), and always one at the end."""
    import torch
    from torch.nn import functional as F
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(seed)
    V = len(data.vocab)
    model = make_torch_model(recipe, V)
    model.train()
    params = [p for p in model.parameters()]
    optimiser = torch.optim.Adam(params, lr=recipe.lr)
    streams = make_streams(data.train_ids, recipe.batch_size, recipe.seq_length)
    val_ids = data.heldout_ids if not val_symbols else data.heldout_ids[:val_symbols]
    curve, best, best_step, best_val = [], None, None, None
    step = chunk = epoch = 0
    eval_times, chars, window_loss, window_steps = [], 0, 0.0, 0
    state = None

    eval_every = TrainConfig().eval_every
    started = time.perf_counter()
    next_eval = eval_interval

    def evaluate():
        nonlocal best, best_step, best_val, window_loss, window_steps
        elapsed = time.perf_counter() - started
        t0 = time.perf_counter()
        val, _ = torch_loss_over(model, val_ids, recipe.batch_size, recipe.seq_length)
        eval_times.append(time.perf_counter() - t0)
        curve.append([round(elapsed, 3), step, val])
        if best_val is None or val < best_val:          # best.npz's rule: strictly lower
            best_val, best_step = val, step
            best = copy.deepcopy(model.state_dict())
        log(f"  {recipe.name} step {step}: {elapsed:.0f} s, train {window_loss / max(1, window_steps):.4f} "
            f"val {val:.4f} nats")
        window_loss, window_steps = 0.0, 0

    while (step < max_steps) if max_steps else (time.perf_counter() - started < max_time):
        if chunk >= streams.chunks_per_pass:          # a new pass starts from a fresh state
            chunk, epoch, state = 0, epoch + 1, None
        inputs, targets, weights = streams.chunk(chunk)
        fraction = step / max_steps if max_steps else min(1.0, (time.perf_counter() - started) / max_time)
        lr = learning_rate(recipe.lr, recipe.lr_schedule, step=step, fraction=fraction,
                           warmup_steps=recipe.warmup_steps, decay_rate=recipe.lr_decay,
                           decay_every=recipe.lr_decay_every, min_lr_fraction=recipe.lr_floor)
        for group in optimiser.param_groups:
            group["lr"] = lr
        logits, state = model(torch.from_numpy(inputs.astype(np.int64)), state)
        state = tuple(s.detach() for s in state)
        nll = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets.astype(np.int64)).reshape(-1),
                              reduction="none")
        if weights is None:
            loss = nll.mean()
        else:
            w = torch.from_numpy(weights.reshape(-1))
            loss = (nll * w).sum() / w.sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        optimiser.step()
        chunk += 1
        step += 1
        chars += inputs.size if weights is None else int(weights.sum())
        window_loss += float(loss.detach())
        window_steps += 1
        if eval_interval is None:
            due = step % eval_every == 0
        else:
            due = time.perf_counter() - started >= next_eval
        if due:
            evaluate()
            while eval_interval is not None and next_eval <= time.perf_counter() - started:
                next_eval += eval_interval
    if not curve or curve[-1][1] != step:
        evaluate()
    elapsed = curve[-1][0]            # when the last evaluation began, as charlstm's elapsed_s
    periodic_eval_s = sum(eval_times[:-1])   # the evaluations inside elapsed

    model.load_state_dict(best)
    t0 = time.perf_counter()
    exact, n = torch_loss_over(model, data.heldout_ids, 1, EXACT_CHUNK)
    return {"exact_nats": exact, "exact_bits": nats_to_bits(exact), "exact_symbols": n,
            "exact_eval_s": round(time.perf_counter() - t0, 1), "steps": step, "best_step": best_step,
            "epochs": round(epoch + chunk / streams.chunks_per_pass, 4), "elapsed_s": round(elapsed, 3),
            "chars": chars, "chars_per_s": chars / elapsed, "eval_s": round(periodic_eval_s, 2),
            "train_chars_per_s": chars / max(1e-9, elapsed - periodic_eval_s), "curve": curve,
            "val_symbols": len(val_ids),
            "settings": dict(asdict(recipe), input=f"nn.Embedding({V}, {recipe.hidden_size})" if recipe.embedding
                             else f"one-hot ({V})", init="PyTorch's defaults", threads=torch.get_num_threads())}


# --- the charlstm side ------------------------------------------------------------------------------

def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def run_charlstm(corpus: Corpus, data: Data, run_dir: Path, heldout_path: Path, args, extra: list[str],
                 log=print) -> dict:
    from charlstm.training.checkpoint import load_checkpoint
    from charlstm.training.evaluation import evaluate_ids
    budget = ["--max-steps", str(args.max_steps)] if args.max_steps else ["--max-time", f"{args.max_time:g}"]
    cmd = [sys.executable, "-m", "charlstm", "train", str(corpus.path), *budget,
           "--val-fraction", f"{args.val_fraction:g}", "--seed", str(args.seed), "--out", str(run_dir), "--quiet"]
    if args.min_count != TrainConfig().min_count:
        cmd += ["--min-count", str(args.min_count)]
    cmd += extra
    log("+ " + " ".join(["charlstm"] + cmd[3:]))
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=_env())
    wall = time.perf_counter() - started

    latest = load_checkpoint(run_dir / "latest.npz")
    if latest.vocab != data.vocab:
        raise CharlstmError(f"{run_dir}: charlstm's vocabulary differs from the study's; the sides would not see "
                            "the same ids")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [m for m in metrics if "val_nats" in m]
    curve = [[m["elapsed_s"], m["step"], m["val_nats"]] for m in evals if m["val_nats"] is not None]
    config = latest.train["config"]
    streams = make_streams(data.train_ids, config["batch_size"], config["seq_length"])
    steps = evals[-1]["step"]
    elapsed = evals[-1]["elapsed_s"]
    chars = trained_chars(streams, steps)

    # What one periodic evaluation costs (timed on a part of the held-out text, scaled to all of it),
    # times how many the run made before its last one: the part of elapsed_s spent validating.
    part = data.heldout_ids[:min(len(data.heldout_ids), 50_000)]
    t0 = time.perf_counter()
    evaluate_ids(latest.params, latest.config, part, streams=config["batch_size"], seq_length=config["seq_length"])
    one_eval = (time.perf_counter() - t0) * len(data.heldout_ids) / len(part)
    eval_s = one_eval * (len(evals) - 1)

    best = load_checkpoint(run_dir / "best.npz")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "charlstm", "eval", str(run_dir / "best.npz"), str(heldout_path),
                          "--json"], check=True, capture_output=True, text=True, env=_env())
    final = json.loads(out.stdout)
    if final["symbols"] != len(data.heldout_ids) - 1:
        raise CharlstmError(f"charlstm eval predicted {final['symbols']} symbols, expected {len(data.heldout_ids) - 1}")
    return {"exact_nats": final["nats_per_char"], "exact_bits": final["bits_per_char"],
            "exact_symbols": final["symbols"], "exact_eval_s": round(time.perf_counter() - t0, 1),
            "steps": steps, "best_step": best.train["progress"]["step"], "epochs": evals[-1]["epoch"],
            "elapsed_s": elapsed, "process_wall_s": round(wall, 2), "chars": chars, "chars_per_s": chars / elapsed,
            "eval_s": round(eval_s, 2), "eval_s_is_estimate": True,
            "train_chars_per_s": chars / max(1e-9, elapsed - eval_s), "curve": curve,
            "val_symbols": len(data.heldout_ids), "command": cmd[1:],
            "settings": {"train": config, "model": latest.config.to_dict()}}


def eval_interval_from(charlstm_result: dict | None) -> float | None:
    """The median wall-time spacing of charlstm's periodic evaluations (every eval_every steps; not
    the one at the end), or None when it made none (the PyTorch run then counts steps instead)."""
    if charlstm_result:
        every = charlstm_result["settings"]["train"]["eval_every"]
        times = [0.0] + [c[0] for c in charlstm_result["curve"] if c[1] % every == 0]
        gaps = [b - a for a, b in zip(times, times[1:])]
        if gaps:
            return statistics.median(gaps)
    return None


# --- the report -------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, n: int = 8) -> list[float]:
    """Round values inside [lo, hi] for about n ticks (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = (0.0, 1.0) if not math.isfinite(lo) else (lo, lo + 1.0)
    raw = (hi - lo) / max(1, n - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def svg_curves(series: dict, title: str = "", width: int = 720, height: int = 380,
               exact: dict | None = None) -> str:
    """An inline SVG of validation loss against wall time: series name -> [(seconds, nats), ...];
    exact: name -> (seconds, nats), drawn as a ring. Names in COLOURS get their colours."""
    left, right, top, bottom = 64, 16, 34, 48
    points = [p for pts in series.values() for p in pts] + list((exact or {}).values())
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [p[1] for p in points] or [0.0, 1.0]
    x0, x1 = 0.0, max(max(xs), 1e-9)
    ylo, yhi = min(ys), max(ys)
    pad = 0.05 * (yhi - ylo) if yhi > ylo else 0.1
    y0, y1 = ylo - pad, yhi + pad
    xticks, yticks = nice_ticks(x0, x1), nice_ticks(y0, y1)
    pw, ph = width - left - right, height - top - bottom

    def X(v):
        return left + (v - x0) / (x1 - x0) * pw

    def Y(v):
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    esc = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="{left}" y="20" font-size="14" font-weight="bold">{esc(title)}</text>')
    for t in xticks:
        out.append(f'<line x1="{X(t):.1f}" y1="{top}" x2="{X(t):.1f}" y2="{top + ph}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{X(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in yticks:
        out.append(f'<line x1="{left}" y1="{Y(t):.1f}" x2="{left + pw}" y2="{Y(t):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{Y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">wall time (s)</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">validation (nats/char)</text>')
    for k, (name, pts) in enumerate(series.items()):
        colour = COLOURS.get(name, ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")[k % 4])
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in pts:
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="2.5" fill="{colour}"/>')
        if exact and name in exact:
            ex, ey = exact[name]
            out.append(f'<circle cx="{X(ex):.1f}" cy="{Y(ey):.1f}" r="5" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
        ly = top + 14 + 18 * k
        out.append(f'<line x1="{left + pw - 200}" y1="{ly - 4}" x2="{left + pw - 176}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{left + pw - 170}" y="{ly}">{esc(LABELS.get(name, name))}</text>')
    if exact:
        ly = top + 14 + 18 * len(series)
        out.append(f'<circle cx="{left + pw - 188}" cy="{ly - 4}" r="5" fill="none" stroke="#333" stroke-width="2"/>')
        out.append(f'<text x="{left + pw - 170}" y="{ly}">exact, whole held-out part</text>')
    out.append("</svg>")
    return "\n".join(out)


def _cell(side: dict | None) -> str:
    if not side:
        return "–"
    return f"{side['exact_nats']:.3f} ({side['chars_per_s']:,.0f} chars/s)"


def margin(sides: dict) -> float | None:
    """How far charlstm's exact figure is below the better of the PyTorch ones (nats/char)."""
    others = [sides[s]["exact_nats"] for s in ("torch-recipe", "torch-plain") if s in sides]
    if "charlstm" not in sides or not others:
        return None
    return min(others) - sides["charlstm"]["exact_nats"]


def markdown_table(results: dict) -> str:
    lines = ["| corpus | symbols | charlstm | torch at charlstm's recipe | plain torch | charlstm's margin |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in results["corpora"]:
        s = c["sides"]
        m = margin(s)
        lines.append(f"| {c['name']} | {c['symbols']:,} ({c['distinct']} distinct) | {_cell(s.get('charlstm'))} | "
                     f"{_cell(s.get('torch-recipe'))} | {_cell(s.get('torch-plain'))} | "
                     f"{'–' if m is None else f'{m:+.3f}'} |")
    return "\n".join(lines)


def render_report(results: dict) -> str:
    esc = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>charlstm's default recipe against PyTorch, at equal time</title>",
             "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
             "td.n{text-align:right}</style></head><body>",
             "<h1>charlstm's default recipe against PyTorch, at equal time</h1>",
             (f"<p>{results['max_steps']:,} optimiser steps per run" if results.get("max_steps") else
              f"<p>{results['max_time']:g} s of wall time per run") + ", one run right after the other; validation "
             f"estimates during training, the exact figure over the whole held-out last "
             f"{results['val_fraction']:.0%} after it. Seed {results['seed']}; "
             f"{esc(results['machine']['platform'])}, {results['machine']['cpus']} cores; "
             f"started {esc(results['started'])}.</p>"]
    for c in results["corpora"]:
        s = c["sides"]
        parts.append(f"<h2>{esc(c['name'])}</h2>")
        parts.append(f"<p>{esc(str(c['path']))}: {c['symbols']:,} symbols, {c['distinct']} distinct; trained on "
                     f"{c['train_symbols']:,}, held out {c['heldout_symbols']:,}.</p>")
        series = {name: [(p[0], p[2]) for p in side["curve"]] for name, side in s.items()}
        exact = {name: (side["elapsed_s"], side["exact_nats"]) for name, side in s.items()}
        parts.append(svg_curves(series, title=f"{c['name']}: validation against wall time", exact=exact))
        parts.append("<table><tr><th>side</th><th>exact nats/char</th><th>bits/char</th><th>steps</th>"
                     "<th>best step</th><th>chars/s</th><th>periodic evaluation</th><th>started</th></tr>")
        for name, side in s.items():
            est = " (est.)" if side.get("eval_s_is_estimate") else ""
            parts.append(f"<tr><td>{esc(LABELS[name])}</td><td class=n>{side['exact_nats']:.4f}</td>"
                         f"<td class=n>{side['exact_bits']:.4f}</td><td class=n>{side['steps']:,}</td>"
                         f"<td class=n>{side['best_step']:,}</td><td class=n>{side['chars_per_s']:,.0f}</td>"
                         f"<td class=n>{side['eval_s']:.1f} s{est}</td><td>{esc(side['started_at'])}</td></tr>")
        parts.append("</table>")
        m = margin(s)
        if m is not None:
            parts.append(f"<p>charlstm's margin over the better PyTorch run: {m:+.3f} nats/char.</p>")
    parts.append("<h2>All corpora</h2><pre>" + esc(markdown_table(results)) + "</pre></body></html>")
    return "\n".join(parts) + "\n"


def save(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "report.html").write_text(render_report(results), encoding="utf-8")
    (out / "table.md").write_text(markdown_table(results) + "\n")


# --- the study --------------------------------------------------------------------------------------

def parse_args(argv: list[str]):
    extra: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog="Options after -- go to `charlstm train` (the charlstm side only).")
    parser.add_argument("corpora", nargs="+", metavar="CORPUS", help="a text file, or NAME=PATH")
    parser.add_argument("--max-time", type=float, default=600, help="seconds of wall time per run [600]")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="optimiser steps per run instead of --max-time: the per-step comparison")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="the held-out share, its end [0.1]")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    parser.add_argument("--only", default=",".join(SIDES), help="a comma-separated subset of " + ",".join(SIDES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-count", type=int, default=TrainConfig().min_count,
                        help="rarer symbols map to the unknown symbol, on every side [charlstm's default]")
    parser.add_argument("--val-symbols", type=int, default=500_000,
                        help="the PyTorch runs' periodic estimate reads this many held-out symbols (0: all)")
    parser.add_argument("--eval-interval", type=float, default=None,
                        help="seconds between the PyTorch runs' estimates [charlstm's spacing on the corpus, "
                             "else every eval_every steps]")
    args = parser.parse_args(argv)
    asked = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in asked if s not in SIDES + PROBES]
    if unknown or not asked:
        parser.error(f"--only: unknown side {', '.join(unknown) or '(none)'}; use some of "
                     f"{', '.join(SIDES + PROBES)}")
    args.sides = [s for s in SIDES + PROBES if s in asked]   # charlstm first: its cadence paces the others
    refused = [e for e in extra if e.split("=")[0] in STUDY_OPTIONS]
    if refused:
        parser.error(f"{', '.join(refused)} after --: the study sets these itself (or they would make the runs "
                     "unequal)")
    if not (args.max_time > 0 and math.isfinite(args.max_time)):
        parser.error("--max-time must be a positive number of seconds")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    corpora = [parse_corpus(a) for a in args.corpora]
    for c in corpora:
        if not c.path.is_file():
            why = "not a regular file" if c.path.exists() else "no such file"
            print(f"recipe.py: {c.path}: {why}", file=sys.stderr)
            return 2
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        print(f"recipe.py: two corpora are named alike ({', '.join(names)}); name them NAME=PATH", file=sys.stderr)
        return 2
    if "charlstm" in args.sides:
        for c in corpora:
            if (args.out / c.name / "charlstm" / "latest.npz").exists():
                print(f"recipe.py: {args.out / c.name / 'charlstm'} holds a run already; choose another --out",
                      file=sys.stderr)
                return 1
    if any(s != "charlstm" for s in args.sides):
        try:
            import torch  # noqa: F401
        except ImportError:
            print("recipe.py: the PyTorch sides need torch (pip install torch), or use --only charlstm",
                  file=sys.stderr)
            return 2
        torch_version = torch.__version__
    else:
        torch_version = None
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"max_time": None if args.max_steps else args.max_time, "max_steps": args.max_steps,
               "val_fraction": args.val_fraction, "seed": args.seed,
               "min_count": args.min_count, "extra_charlstm_options": extra,
               "started": dt.datetime.now().isoformat(timespec="seconds"),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                           "torch": torch_version, "numpy": np.__version__},
               "corpora": []}
    for corpus in corpora:
        try:
            data = split_corpus(read_text(corpus.path, max_bytes=None), args.val_fraction, min_count=args.min_count)
            corpus_dir = args.out / corpus.name
            corpus_dir.mkdir(parents=True, exist_ok=True)
            heldout_path = corpus_dir / "heldout.txt"
            write_heldout(heldout_path, data.vocab, data.heldout_ids)
        except CharlstmError as e:
            print(f"recipe.py: {corpus.path}: {e}", file=sys.stderr)
            return 1
        entry = {"name": corpus.name, "path": str(corpus.path), "symbols": len(data.ids), "distinct": len(data.vocab),
                 "train_symbols": len(data.train_ids), "heldout_symbols": len(data.heldout_ids), "sides": {}}
        results["corpora"].append(entry)
        print(f"== {corpus.name}: {len(data.ids):,} symbols ({len(data.vocab)} distinct), held out the last "
              f"{len(data.heldout_ids):,}", flush=True)
        for side in args.sides:
            time.sleep(SETTLE_S)
            begun = dt.datetime.now().isoformat(timespec="seconds")
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            if side == "charlstm":
                try:
                    record = run_charlstm(corpus, data, corpus_dir / "charlstm", heldout_path, args, extra)
                except subprocess.CalledProcessError as e:
                    print(f"recipe.py: {corpus.name}: `charlstm {e.cmd[3]}` exited with status {e.returncode}"
                          + (f": {e.stderr.strip()}" if e.stderr else ""), file=sys.stderr)
                    return 1
                except CharlstmError as e:
                    print(f"recipe.py: {corpus.name}: {e}", file=sys.stderr)
                    return 1
            elif side == "torch-transformer":
                import char_transformer
                record = char_transformer.train(data, args.max_time, args.seed, max_steps=args.max_steps,
                                                eval_interval=args.eval_interval)
            else:
                interval = None if args.max_steps else (args.eval_interval or
                                                        eval_interval_from(entry["sides"].get("charlstm")))
                budget = {"max_steps": args.max_steps} if args.max_steps else {"max_time": args.max_time}
                recipe = torch_recipes(len(data.train_ids), **budget)[side]
                record = train_torch(recipe, data, args.max_time, args.seed, interval, args.val_symbols or None,
                                     max_steps=args.max_steps)
                record["eval_interval_s"] = None if interval is None else round(interval, 2)
            record.update(started_at=begun, load_before=load)
            entry["sides"][side] = record
            print(f"  {side}: {record['exact_nats']:.4f} nats/char ({record['exact_bits']:.4f} bits) exact on "
                  f"{record['exact_symbols']:,} held-out symbols; {record['steps']:,} steps, "
                  f"{record['chars_per_s']:,.0f} chars/s", flush=True)
            save(results, args.out)
    save(results, args.out)
    print()
    print(markdown_table(results))
    print(f"\n{args.out / 'results.json'}, {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
