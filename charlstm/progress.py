"""What a person sees and does while a run trains: a progress bar, and Ctrl-C that stops cleanly.

The training loop itself shows nothing and installs nothing (see training/loop.py); the notebook
API and the command line set these up around it.
"""

from __future__ import annotations

import sys

from charlstm.interrupts import StopOnSignals  # noqa: F401  (the training API's, kept here too)
from charlstm.training.evaluation import nats_to_bits

LOG_REDRAW_S = 30.0   # a text bar written to a file, not a terminal, redraws this seldom


def bar_options(tqdm_class, stream=None) -> dict:
    """tqdm options for where the bar goes. In a terminal or a notebook a bar redraws itself in
    place; written to a log file (nohup, a job scheduler, CI) every redraw is kept, and an hour
    of training at tqdm's pace would write tens of thousands of them: there, one each
    LOG_REDRAW_S seconds. maxinterval too: tqdm's monitor thread forces a redraw of a bar that has
    not drawn for maxinterval seconds (10 by default), which would undo mininterval."""
    stream = sys.stderr if stream is None else stream
    if any(c.__module__ == "tqdm.notebook" for c in tqdm_class.__mro__):
        return {}                        # a widget: it redraws in place wherever it runs
    try:
        to_terminal = stream.isatty()
    except (AttributeError, ValueError):
        to_terminal = False
    return {} if to_terminal else {"mininterval": LOG_REDRAW_S, "maxinterval": LOG_REDRAW_S}


def drawn_in_place(tqdm_class, stream=None) -> bool:
    """Whether a bar redraws itself in place (a terminal, a notebook) rather than into a log."""
    return not bar_options(tqdm_class, stream)


class ProgressBar:
    """A tqdm bar for the training loop: tqdm's notebook widget in Jupyter, a text bar elsewhere."""

    def __init__(self):
        self._bar = None
        self._in_place = True
        self._line_ended_at = None       # the bar's draw that the last message's line break ended

    def start(self, total_steps, done_steps):
        from tqdm.auto import tqdm
        self._in_place = drawn_in_place(tqdm)
        self._bar = tqdm(total=total_steps, initial=done_steps, unit="step", dynamic_ncols=True, smoothing=0.1,
                         **bar_options(tqdm))

    def step(self, step, loss, chars_per_s):
        self._bar.update(1)
        if step % 10 == 0 or step == 1:        # the postfix costs a redraw: not every step
            self._bar.set_postfix(loss=f"{loss:.3f}", bpc=f"{nats_to_bits(loss):.3f}",
                                  chars_per_s=f"{chars_per_s:,.0f}", refresh=False)

    def message(self, line):
        # Before the bar exists (a line about the corpus), tqdm's own write. Not `self._bar or
        # tqdm`: a bar of unknown length (a time budget) refuses to be asked whether it is true.
        from tqdm.auto import tqdm
        if self._bar is None or self._in_place:
            (tqdm if self._bar is None else self._bar).write(line)
            return
        # In a log, tqdm's write would clear the bar and draw it again under the message: the same
        # bar twice, and at the end a final bar that close() writes once more. End the bar's last
        # line (once) and write the message after it; the next draw starts a line of its own.
        drawn = self._bar.last_print_t
        self._bar.fp.write(("\n" if drawn != self._line_ended_at else "") + line + "\n")
        self._bar.fp.flush()
        self._line_ended_at = drawn

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LabelsBar(ProgressBar):
    """The bar of a classifier's or a tagger's training run: the loss in nats and the symbols read
    per second (bits per character, a character model's figure, would mean nothing here)."""

    def step(self, step, loss, symbols_per_s):
        self._bar.update(1)
        if step % 10 == 0 or step == 1:
            self._bar.set_postfix(loss=f"{loss:.3f}", symbols_per_s=f"{symbols_per_s:,.0f}", refresh=False)


class ByteBar:
    """A tqdm bar for reading a large corpus (or evaluating a long text): one bar per stage
    ("counting", "encoding", ...), in bytes unless told another unit, closed when its stage
    reaches its total. Called as progress(stage, done, total)."""

    def __init__(self, unit: str = "B"):
        self.unit = unit
        self._bar = None
        self._stage = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        from tqdm.auto import tqdm
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit=self.unit, unit_scale=True, unit_divisor=1000,
                             dynamic_ncols=True, smoothing=0.1, leave=False, **bar_options(tqdm))
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if total is not None and done >= total:
                self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["ProgressBar", "LabelsBar", "ByteBar", "StopOnSignals"]
