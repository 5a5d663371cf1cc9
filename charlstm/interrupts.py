"""Ctrl-C and SIGTERM: how a long piece of work hears that the user wants it to stop.

Two ways of stopping, one module:

- **Between two steps.** While a run trains, `StopOnSignals` turns SIGINT (Ctrl-C, a notebook's
  interrupt) and SIGTERM into a flag instead of an exception, so that the loop ends between two
  updates and saves, never mid-update (training/loop.py reads the flag as `should_stop`).
- **At a checkpoint.** Every other long phase (validation over a large split, the evaluation's
  sample, `Model.evaluate_file` over a big file, encoding a corpus, a trace, novelty's samples,
  a long sample or beam search) calls `checkpoint()` once per chunk or symbol. Under
  `StopOnSignals` a signal that has come makes it raise `Interrupted`, so such a phase inside a
  training run ends in moments instead of when it is done (which may be never); the loop then
  saves and reports the run interrupted. Outside it, checkpoint() costs a list lookup.

`Interrupted` is a KeyboardInterrupt, so whatever cleans up after Ctrl-C (an atomic write
removing its temporary file, a notebook showing the interrupt) does the same for it. The command
line also turns SIGTERM into it (`raising_on_signals`), so `kill` ends any command as Ctrl-C does:
exit 130, one line, no partial file.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(KeyboardInterrupt):
    """The user asked the work to stop (SIGINT or SIGTERM); `signal` names which."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal = signal_name


_deferring: list["StopOnSignals"] = []     # the StopOnSignals blocks now open, innermost last


class StopOnSignals:
    """Within `with`, SIGINT and SIGTERM set a flag instead of raising, so the training loop ends
    between two steps and saves, never mid-update; `checkpoint()` raises Interrupted once the
    flag is set, so that the long phases between steps end too. Calling the object tells whether
    a signal came. A second signal does not wait for a checkpoint: it raises Interrupted at once
    (work that has none still stops on a second Ctrl-C). Outside the main thread, where Python
    cannot take signals, it installs nothing."""

    def __init__(self):
        self.received: str | None = None
        self._old = {}

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        _deferring.append(self)
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is not None:
            raise Interrupted(name)
        self.received = name

    def __call__(self) -> bool:
        return self.received is not None

    def __exit__(self, *exc):
        if self in _deferring:
            _deferring.remove(self)
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}


def checkpoint() -> None:
    """Raise Interrupted if a stop was asked for while a StopOnSignals block is open. Long loops
    call this once per chunk, block or symbol: cheap enough for every step of a sample."""
    if _deferring and _deferring[-1].received is not None:
        raise Interrupted(_deferring[-1].received)


@contextlib.contextmanager
def raising_on_signals():
    """Within `with`, SIGTERM raises Interrupted as SIGINT raises KeyboardInterrupt: the command
    line's commands stop at once on either, cleaning up as they go. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


__all__ = ["Interrupted", "StopOnSignals", "checkpoint", "raising_on_signals"]
