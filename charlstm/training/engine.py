"""What computes a training step: the loop (training/loop.py) asks an engine for each step and
keeps everything else (the recipe, the streams, the schedule, evaluation, the run directory).

The NumPy engine is charlstm's own, and the reference: the step's math is model/stack.py's
hand-written forward and backward pass, then clipping and Adam from nn/optim.py, in place on the
run's arrays. Another engine (charlstm/engines/pytorch.py: PyTorch, on a GPU or on many
processes) keeps its own copies of the weights, Adam's moments and the carried state, and writes
them back into the run's arrays when asked (`sync`), before the loop evaluates or saves: so a
checkpoint is the same file whichever engine wrote it, and a run moves between engines.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model import dropout_masks, loss_and_grads, zero_state
from charlstm.nn.optim import adam_update, clip_by_global_norm
from charlstm.nn.workspace import Workspace
from charlstm.training.evaluation import evaluate_streams


class Engine(Protocol):
    """One training step at a time, on one process or on several that share the batch."""

    name: str           # "numpy", "torch"
    rank: int           # this process's place among those sharing the run (0: the one that writes)
    world_size: int     # how many processes share each batch

    def start(self, run) -> None:
        """Take the run's weights, Adam's moments and carried state as the starting point."""

    def step(self, run, inputs, targets, weights, lr: float) -> tuple[float, float, bool]:
        """One truncated-BPTT step on the whole batch (inputs, targets (T, B); weights (T, B) or
        None). Returns (mean loss over the batch, gradient norm before clipping, applied)."""

    def evaluate(self, run, streams) -> tuple[float, int]:
        """(mean nats, predictions) of the run's model over one pass of streams, each from a zero
        state, without dropout (training/evaluation.py's evaluate_streams; rank 0 alone calls it)."""

    def reset_state(self, run) -> None:
        """A new pass over the corpus starts from a zero state."""

    def sync(self, run) -> None:
        """Write the weights, Adam's moments and the carried state of every stream into the run's
        arrays (every process calls it together; see Engine.agree)."""

    def agree(self, stop: bool, time_up: bool, due: bool) -> tuple[bool, bool, bool]:
        """The loop's decisions that depend on a clock or a signal, the same on every process:
        stop if any process was asked to, the time and the evaluation as the first process sees them."""

    def barrier(self) -> None:
        """Wait until every process has come here (the first one has written what all read)."""

    def close(self) -> None:
        """Free what the engine holds (a process group)."""


class NumpyEngine:
    """charlstm's own engine: the step computed in place on the run's arrays."""

    name, rank, world_size = "numpy", 0, 1

    def __init__(self):
        self.workspace = Workspace()      # the step's activations and gradients, reused every step

    def start(self, run) -> None:
        pass

    def step(self, run, inputs, targets, weights, lr: float) -> tuple[float, float, bool]:
        """Loss, gradients, clipping, the update. A batch whose loss or gradient is not finite is
        not applied, so a NaN or inf never reaches the weights or Adam's moments."""
        masks = dropout_masks(run.model_config, inputs.shape[0], inputs.shape[1], run.rng, run.state.h.dtype,
                              self.workspace)
        loss, grads, new_state, _ = loss_and_grads(run.params, run.model_config, inputs.astype(np.intp),
                                                   targets.astype(np.intp), run.state, masks, weights,
                                                   self.workspace)
        norm = clip_by_global_norm(grads, run.config.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return loss, norm, False
        adam_update(run.params, grads, run.adam, lr)
        # A finite gradient can still give non-finite weights (a learning rate of 1e300): such
        # weights must never reach a checkpoint. One pass over the weights, well under 1 % of a step.
        if not all(np.isfinite(p).all() for p in run.params.values()):
            raise diverged(run.prog.step, lr)
        run.state = new_state
        return loss, norm, True

    def evaluate(self, run, streams) -> tuple[float, int]:
        return evaluate_streams(run.params, run.model_config, streams)

    def reset_state(self, run) -> None:
        run.state = zero_state(run.model_config, run.config.batch_size, run.state.h.dtype.type)

    def sync(self, run) -> None:
        pass

    def agree(self, stop: bool, time_up: bool, due: bool) -> tuple[bool, bool, bool]:
        return stop, time_up, due

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


def diverged(step: int, lr: float) -> CharlstmError:
    """The error of an update that made the weights non-finite (step: the steps taken before it)."""
    kept = "no checkpoint had been written yet" if step == 0 else "checkpoints written before it are kept"
    return CharlstmError(f"training diverged at step {step + 1}: the update made the weights "
                         f"non-finite (learning rate {lr:g}); {kept}; restart with a lower --lr")


__all__ = ["Engine", "NumpyEngine", "diverged"]
