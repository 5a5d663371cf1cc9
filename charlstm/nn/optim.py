"""Adam, gradient clipping by global norm, and the learning-rate schedule, over dicts of arrays.

Parameters, gradients and both moments share the same keys (the checkpoint's keys), so one loop
over the dict updates everything and no parameter can be forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class AdamState:
    m: dict[str, np.ndarray]   # first moments, same keys and shapes as the parameters
    v: dict[str, np.ndarray]   # second moments
    step: int = 0              # number of updates taken so far


def adam_init(params: dict[str, np.ndarray]) -> AdamState:
    return AdamState(m={k: np.zeros_like(p) for k, p in params.items()},
                     v={k: np.zeros_like(p) for k, p in params.items()})


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every gradient, accumulated in float64."""
    total = 0.0
    for g in grads.values():
        # float64 before squaring: a float32 dot product accumulates in float32, where squares
        # of gradients above ~1.8e19 overflow (an exploding gradient would read as non-finite)
        flat = g.reshape(-1).astype(np.float64, copy=False)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most max_norm; return the norm
    before clipping (non-finite if any gradient is)."""
    norm = global_norm(grads)
    if max_norm and max_norm > 0 and norm > max_norm and math.isfinite(norm):
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def adam_update(params, grads, state: AdamState, lr: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam step, in place on params and state."""
    state.step += 1
    t = state.step
    # Bias correction folded into the step size, as in the Adam paper's efficient form.
    step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    for key, p in params.items():
        g, m, v = grads[key], state.m[key], state.v[key]
        dt = p.dtype.type
        m *= dt(beta1)
        m += dt(1 - beta1) * g
        v *= dt(beta2)
        v += dt(1 - beta2) * (g * g)
        denom = np.sqrt(v)
        denom += dt(eps * math.sqrt(1 - beta2 ** t))  # eps on the bias-corrected scale
        p -= dt(step_size) * (m / denom)


def learning_rate(base_lr: float, schedule: str = "constant", step: int = 0, fraction: float = 0.0,
                  warmup_steps: int = 0, decay_rate: float = 0.97, decay_every: int = 1000,
                  min_lr_fraction: float = 0.1) -> float:
    """The learning rate for update number `step` (0-based), `fraction` of the way through the run.

    schedules:
      constant  base_lr throughout (after warm-up);
      step      multiply by decay_rate every decay_every steps (char-rnn's schedule);
      cosine    from base_lr down to min_lr_fraction * base_lr along a half cosine over the run
                (the run's length is known from --max-steps, --epochs or --max-time).
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * decay_rate ** (step // max(1, decay_every))
    if schedule == "cosine":
        floor = min_lr_fraction * base_lr
        return floor + 0.5 * (base_lr - floor) * (1 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")
