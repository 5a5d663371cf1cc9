"""What every cell's fast kernel shares: telling ids from vectors, the chunk length of the
backward pass, and the weight-gradient products of a chunk (summed over chunks, and against a
one-hot input). An optimisation made here reaches every cell."""

from __future__ import annotations

import numpy as np

from charlstm.nn.workspace import Workspace, scratch


def is_ids(x: np.ndarray) -> bool:
    """True when x holds symbol ids (one-hot input) rather than vectors."""
    return np.issubdtype(x.dtype, np.integer)


def backward_chunk_steps(T: int, B: int) -> int:
    """Steps per chunk of the backward pass: about 512 columns (steps x batch) per chunk, enough
    for the weight-gradient product to run at full speed, small enough that the chunk's buffers
    stay in cache and cost no more memory than a few steps."""
    chunks = max(1, round(T * B / 512))
    return -(-T // chunks)


def accumulate(total, product_fn, a, b, scratch, first, *args):
    """total = product_fn(a, b) on the first chunk, total += product_fn(a, b) after it."""
    if first:
        product_fn(a, b, *args, out=total)
    else:
        product_fn(a, b, *args, out=scratch)
        total += scratch


def one_hot_product(dz_cols: np.ndarray, ids: np.ndarray, workspace: Workspace | None, out: np.ndarray):
    """dz_cols @ one_hot(ids) into out (4H, V): column k sums the columns of dz whose input was
    symbol k, the first layer's weight gradient.

    For a small vocabulary the one-hot matrix product is the fastest way (a GEMM of 4H x N x V,
    several times faster than numpy's scatter-add); for a large one, sorting the columns by id
    and summing runs costs O(N x 4H) whatever V is.
    """
    vocab_size = out.shape[1]
    if vocab_size <= 512:
        one_hot = scratch(workspace, "one_hot", (ids.shape[0], vocab_size), dz_cols.dtype)
        one_hot.fill(0)
        one_hot[np.arange(ids.shape[0]), ids] = 1
        return np.matmul(dz_cols, one_hot, out=out)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out.fill(0)
    out[:, sorted_ids[starts]] = np.add.reduceat(dz_cols[:, order], starts, axis=1)
    return out
