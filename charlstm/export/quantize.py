"""Weights at a lower precision, for exports that should be small: float16, or int8 with a scale.

    float32   as trained
    float16   IEEE half precision (about 3 significant digits; weights beyond 65,504 are refused)
    int8      per row of each matrix: q = round(127 w / s) with s = the row's largest |w|, and
              w' = q * s / 127 (as float32: the scale stored is s / 127)

Only matrices change precision: vectors (biases, peepholes) stay float32, as they are a tiny share
of the size and a bias's error moves every step's pre-activation alike. A row of a stored matrix
(K, N) is one input's weights into all N outputs: for the first layer, one symbol's embedding, so
a rare symbol with small weights keeps its own fine scale.

`dequantized` gives the float32 numbers the export computes with, so a quantized model can be
evaluated here exactly as it will run there.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, as_one_hot
from charlstm.training.evaluation import evaluate_ids, nats_to_bits

PRECISIONS = ("float32", "float16", "int8")
FLOAT16_MAX = float(np.finfo(np.float16).max)


class Quantized(NamedTuple):
    """One parameter at a precision: the stored array (float32, float16 or int8), the float32
    scale per row for int8 (else None), and the float32 values it stands for."""

    data: np.ndarray
    scale: np.ndarray | None
    values: np.ndarray


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise CharlstmError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


def quantize(w: np.ndarray, precision: str) -> Quantized:
    """One parameter at `precision` (vectors stay float32, see the module docstring)."""
    check_precision(precision)
    w = np.asarray(w, dtype=np.float32)
    if precision == "float32" or w.ndim < 2:
        return Quantized(w, None, w)
    if precision == "float16":
        if np.abs(w).max(initial=0.0) > FLOAT16_MAX:
            raise CharlstmError(f"a weight of {float(np.abs(w).max()):.3g} does not fit float16 "
                                f"(largest {FLOAT16_MAX:g}); use float32 or int8")
        half = w.astype(np.float16)
        return Quantized(half, None, half.astype(np.float32))
    rows = w.reshape(w.shape[0], -1)
    scale = (np.abs(rows).max(axis=1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))           # an all-zero row stays zero
    q = np.clip(np.rint(rows / safe[:, None]), -127, 127).astype(np.int8)
    values = (q.astype(np.float32) * scale[:, None]).reshape(w.shape)
    return Quantized(q.reshape(w.shape), scale, values)


def dequantized(params: dict, precision: str) -> dict[str, np.ndarray]:
    """The float32 parameters a model at `precision` computes with."""
    return {key: quantize(w, precision).values for key, w in params.items()}


def loss_effect(params: dict, config: ModelConfig, ids: np.ndarray, precision: str) -> dict:
    """Bits per symbol of predicting ids (from a zero state, one stream) with the float32 weights
    and with the weights at `precision`: {"float32", precision, "increase", "symbols"}. A model
    with an embedding is measured in the one-hot form the page stores (model.as_one_hot)."""
    params, config = as_one_hot(params, config)
    full = {k: np.asarray(w, dtype=np.float32) for k, w in params.items()}
    before, n = evaluate_ids(full, config, ids, streams=1)
    after, _ = evaluate_ids(dequantized(full, precision), config, ids, streams=1)
    return {"float32": nats_to_bits(before), precision: nats_to_bits(after),
            "increase": nats_to_bits(after - before), "symbols": n}


__all__ = ["PRECISIONS", "Quantized", "check_precision", "quantize", "dequantized", "loss_effect"]
