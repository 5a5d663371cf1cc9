"""The stack advanced one symbol at a time, for B streams: the decoding path.

Sampling spends its time in Python overhead, not arithmetic (one symbol is a handful of small
products), so each layer's step is the cell's own step object (see the cell's `stepper`), which
prepares its weights and views once, and the layers share one column buffer of states:
    rows = [1; h_0; 1; h_1; ...; 1; h_{L-1}]
so layer l >= 1 reads one contiguous block [h_{l-1}; 1; h_l] (its input, the bias input, its own
previous output) and writes its new h in place, and the first layer reads [1; h_0] with its
one-hot input picked by id. Since each layer's block [1; h_l] sits at the same stride, a cell
whose step has a product reading only its own previous h (the GRU's `recurrent`) has that
product done for every layer at once, in one stacked call, before the layers run: the same
arithmetic, one call instead of L.
"""

from __future__ import annotations

import numpy as np

from charlstm.model.config import ModelConfig, State
from charlstm.model.stack import layer_params


class Stepper:
    """Feeds one symbol per stream and returns the scores for the next one."""

    def __init__(self, params, config: ModelConfig, batch_size: int):
        dtype = params["head.W"].dtype
        H, L = config.hidden_size, config.num_layers
        self.cell, self.H, self.L = config.cell_type, H, L
        self.rows = np.zeros((L * (H + 1), batch_size), dtype=dtype)
        self.rows[::H + 1] = 1
        self.layers = []
        for l in range(L):
            start = 0 if l == 0 else (l - 1) * (H + 1) + 1        # [1; h_0] or [h_{l-1}; 1; h_l]
            rows = self.rows[start:(l + 1) * (H + 1)]
            self.layers.append(self.cell.stepper(layer_params(params, config, l), rows, one_hot=l == 0))
        self.recurrent = self._stack_recurrent(batch_size)
        # b as a (1, V) row: added to (1, V) scores it is a plain add, where the (V,) vector would
        # be broadcast, which at batch 1 costs more than the add itself.
        self.head_W, self.head_b = params["head.W"], params["head.b"][None, :]
        self.logits = np.empty((batch_size, config.vocab_size), dtype=dtype)
        self.top_h = self.rows[(L - 1) * (H + 1) + 1:].T             # (B, H) view of the top layer's h

    def _stack_recurrent(self, B: int):
        """(weights (L, G, H+1), rows (L, H+1, B), out (L, G, B)) when every layer's step has a
        recurrent product over its block [1; h_l]; each layer's output becomes a view of out."""
        H, L = self.H, self.L
        parts = [getattr(layer, "recurrent", None) for layer in self.layers]
        if L < 2 or any(p is None or p[1].shape != (H + 1, B) or p[0].shape != parts[0][0].shape for p in parts):
            return None
        G = parts[0][0].shape[0]
        weights = np.empty((L, H + 1, G), dtype=self.rows.dtype).transpose(0, 2, 1)   # Fortran order each
        weights[...] = [p[0] for p in parts]
        out = np.empty((L, G, B), dtype=self.rows.dtype)
        for l, layer in enumerate(self.layers):
            layer.use_recurrent_output(out[l])
        return weights, self.rows.reshape(L, H + 1, B), out

    def set_state(self, state: State) -> None:
        for l, layer in enumerate(self.layers):
            layer.set_state(state.layer(self.cell, l))

    def state(self) -> State:
        """The current state, as the model's functions take it."""
        return State.of_layers(self.cell, [layer.get_state() for layer in self.layers])

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Feed one symbol per stream (B,); return the scores for the next one (B, V), a buffer
        that the next step overwrites."""
        if self.recurrent is None:
            self.layers[0](ids)
            for layer in self.layers[1:]:
                layer()
        else:
            weights, rows, out = self.recurrent
            np.matmul(weights, rows, out=out)
            self.layers[0](ids, recurrent_done=True)
            for layer in self.layers[1:]:
                layer(recurrent_done=True)
        np.matmul(self.top_h, self.head_W, out=self.logits)
        np.add(self.logits, self.head_b, self.logits)
        return self.logits


__all__ = ["Stepper"]
