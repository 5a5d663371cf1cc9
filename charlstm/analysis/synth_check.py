"""Checking a trained model against a synthetic language (see corpora.synth_lines).

Two measurements, both reported by `charlstm check`:

- Free sampling: the model writes whole lines at temperature 1, its own distribution; the only free
  choices of each language (N, the first letter, the copied string) are genuinely random, so a
  model that learned the language writes valid lines at temperature 1 too. Temperature 0 would
  make every line from the same prompt identical and test one line.
- Extrapolation probes: a prompt that fixes the rest of the line ("aaaaX" must go on "bbbb"), for
  every size N = 1 .. 2 * max_n, answered at temperature 0. The model seldom writes an N beyond the
  trained max_n by itself, so this is what shows how far its counting carries.

Context. Training reads the corpus as one long text with the state carried across lines, so the
model never starts a line from a zero state; from one its first line is often wrong even when
every later line is right. Every prompt is therefore preceded by `context` valid lines of the
language (sizes up to max_n, from the seeded generator), the situation the model was trained in;
context=0 prompts with a bare newline from a zero state.

The logic (prompts, judging) is pure; `check_model` drives anything with Model.sample's signature.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from charlstm.data.corpora import SYNTH_TASKS, check_lines, synth_lines
from charlstm import validate
from charlstm.errors import CharlstmError
from charlstm.model import unconditioned

_GROUP = 100          # free samples that share one context (one batch of the sampler)
_SELECTIVE_PROBES = 3  # selective prompts per size, each with its own random distractors
_ALPHABETS = {"counting": "abX", "selective": "abXY", "remember": "ABabxY", "copy": "abcX"}


@dataclass(frozen=True)
class Probe:
    """A line start that fixes the rest of the line."""

    size: int        # N: the a's (counting, selective), the x's (remember), 3 (copy)
    prompt: str      # the start of the line, e.g. "aaaX"
    expected: str    # what must follow it, newline excluded, e.g. "bbb"


def context_text(task: str, lines: int, max_n: int, rng: np.random.Generator) -> str:
    """A newline, then `lines` valid lines of the language, each ending in a newline."""
    if lines < 0:
        raise CharlstmError(f"--context must be >= 0 lines, got {lines}")
    body = synth_lines(task, lines, max_n=max_n, rng=rng) if lines else []
    return "\n" + "".join(line + "\n" for line in body)


def probes(task: str, max_size: int, rng: np.random.Generator) -> list[Probe]:
    """The extrapolation prompts of a task, for sizes 1..max_size, in increasing size.

    counting: one per size; remember: two (A and B); selective: a few, with the distractor X's
    drawn from rng as in the corpus; copy: all 27 strings (its size is always 3).
    """
    if task not in SYNTH_TASKS:
        raise CharlstmError(f"unknown task {task!r}; choose one of {', '.join(SYNTH_TASKS)}")
    if max_size < 1:
        raise CharlstmError(f"the largest probe size must be at least 1, got {max_size}")
    if task == "copy":
        return [Probe(3, "".join(s) + "X", "".join(s)) for s in itertools.product("abc", repeat=3)]
    out = []
    for n in range(1, max_size + 1):
        if task == "counting":
            out.append(Probe(n, "a" * n + "X", "b" * n))
        elif task == "remember":
            out.extend(Probe(n, first + "x" * n + "Y", first.lower()) for first in "AB")
        else:  # selective
            for _ in range(_SELECTIVE_PROBES):
                a_part = "".join("a" + "X" * int(k) for k in rng.integers(0, 3, size=n))
                out.append(Probe(n, a_part + "Y", "b" * n))
    return out


def judge(probe: Probe, completion: str) -> bool:
    """Whether the model's completion (what it wrote after the prompt, up to and including its
    newline; no newline if it never wrote one) finishes the line correctly."""
    return completion == probe.expected + "\n"


def probe_report(results: list[tuple[Probe, str]]) -> dict:
    """Validity of judged probes by size: {"by_n": {str(size): {"prompts", "valid",
    "valid_share", "wrong"}}, "perfect_up_to"}. "wrong" lists up to 3 (prompt, completion) pairs
    that failed; "perfect_up_to" is the largest size up to which every probe was valid (None when
    the smallest size already fails)."""
    by_size: dict[int, dict] = {}
    for probe, completion in results:
        row = by_size.setdefault(probe.size, {"prompts": 0, "valid": 0, "wrong": []})
        row["prompts"] += 1
        if judge(probe, completion):
            row["valid"] += 1
        elif len(row["wrong"]) < 3:
            row["wrong"].append([probe.prompt, completion])
    perfect = None
    for size in sorted(by_size):
        if by_size[size]["valid"] < by_size[size]["prompts"]:
            break
        perfect = size
    by_n = {str(size): {"prompts": row["prompts"], "valid": row["valid"],
                        "valid_share": row["valid"] / row["prompts"], "wrong": row["wrong"]}
            for size, row in sorted(by_size.items())}
    return {"by_n": by_n, "perfect_up_to": perfect}


def _as_list(texts) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def check_model(model, task: str, n: int = 1000, temperature: float = 1.0, max_n: int = 10,
                context: int = 3, max_length: int = 200, seed: int = 0) -> dict:
    """Free samples and extrapolation probes of `model` (anything with Model.sample's signature).

    Returns check_lines' report of the n free lines (n, valid, valid_share, unparsed, by_n) plus
    the settings and "extrapolation": probe_report of the probes for sizes 1..2*max_n.
    """
    if task not in SYNTH_TASKS:
        raise CharlstmError(f"unknown task {task!r}; choose one of {', '.join(SYNTH_TASKS)}")
    rng = validate.seed(seed)
    if n < 1:
        raise CharlstmError(f"--n must be at least 1, got {n}")
    if max_n < 1:
        raise CharlstmError(f"--max-n must be at least 1, got {max_n}")
    if max_length < 1:
        raise CharlstmError(f"--max-length must be at least 1 symbol, got {max_length}")
    if getattr(model, "config", None) is not None:
        unconditioned(model.config, "the synthetic-language check")
    vocab = getattr(model, "vocab", None)
    missing = sorted(set(_ALPHABETS[task] + "\n") - set(vocab.symbols)) if vocab is not None else []
    if missing:
        raise CharlstmError(f"the model's vocabulary lacks {', '.join(map(repr, missing))}, which the {task} "
                            "language uses; was it trained on another task?")

    # Free sampling, in groups that each continue their own context.
    lines: list[str] = []
    for start in range(0, n, _GROUP):
        prime = context_text(task, context, max_n, rng)
        count = min(_GROUP, n - start)
        texts = model.sample(length=max_length, temperature=temperature, prime=prime, num_samples=count,
                             stop="\n", seed=int(rng.integers(2**31)))
        lines.extend(text[len(prime):] for text in _as_list(texts))
    report = {"task": task, "temperature": temperature, "context": context, "max_n": max_n, "seed": seed}
    report.update(check_lines(task, lines))

    # Probes at temperature 0: deterministic, so one sample each. The length leaves room to see
    # an overshoot; a completion that fills it never wrote its newline.
    results = []
    for probe in probes(task, 2 * max_n, rng):
        prime = context_text(task, context, max_n, rng) + probe.prompt
        length = 2 * len(probe.expected) + 2
        text = _as_list(model.sample(length=length, temperature=0, prime=prime, stop="\n"))[0][len(prime):]
        results.append((probe, text if len(text) >= length else text + "\n"))
    report["extrapolation"] = probe_report(results)
    return report


def _runs(text: str) -> str:
    """Run-length form, easier to count than the text: "aaaX" -> "a*3 X"."""
    parts = []
    for symbol, group in itertools.groupby(text):
        k = len(list(group))
        shown = "\\n" if symbol == "\n" else validate.printable(symbol)
        parts.append(f"{shown}*{k}" if k > 1 else shown)
    return " ".join(parts) if parts else "(nothing)"


def _short(text: str, width: int = 40) -> str:
    """The run-length form if it is short, else how many of each symbol: "(14 a, 19 X, 1 Y)"."""
    runs = _runs(text)
    if len(runs) <= width:
        return runs
    counts = [(text.count(symbol), _runs(symbol)) for symbol in dict.fromkeys(text)]
    return "(" + ", ".join(f"{k} {shown}" for k, shown in counts) + ")"


def format_report(report: dict) -> str:
    """The report as the text `charlstm check` prints."""
    out = [f"{report['task']}: {report['valid']}/{report['n']} free lines valid "
           f"({100 * report['valid_share']:.1f} %) at temperature {report['temperature']:g}, "
           f"after {report['context']} context lines"]
    if report["unparsed"]:
        out.append(f"  {report['unparsed']} lines without a readable size")
    for size, row in report["by_n"].items():
        out.append(f"  n={size:>3}: {row['valid']:>5}/{row['lines']:<5} {100 * row['valid_share']:6.1f} %")
    ex = report["extrapolation"]
    if len(ex["by_n"]) == 1:       # every probe one size (copy's 27 strings): a count says it all
        valid = sum(row["valid"] for row in ex["by_n"].values())
        prompts = sum(row["prompts"] for row in ex["by_n"].values())
        out.append(f"prompted at temperature 0: {valid}/{prompts} right")
    else:
        perfect = "none" if ex["perfect_up_to"] is None else f"n={ex['perfect_up_to']}"
        out.append(f"prompted at temperature 0 (trained up to n={report['max_n']}): perfect up to {perfect}")
    for size, row in ex["by_n"].items():
        line = f"  n={size:>3}: {row['valid']:>3}/{row['prompts']:<3} {100 * row['valid_share']:6.1f} %"
        if row["wrong"]:
            prompt, completion = row["wrong"][0]
            line += f"   e.g. {_short(prompt)} -> {_short(completion)}"
        out.append(line)
    return "\n".join(out)


__all__ = ["Probe", "context_text", "probes", "judge", "probe_report", "check_model", "format_report"]
