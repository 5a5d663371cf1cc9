"""The network over any cell: its config, parameters, forward and backward passes, and the
one-symbol step for decoding. Everything above (training, decoding, analysis, export) comes here,
never into a cell's internals."""

from charlstm.model.config import ModelConfig, State, zero_state
from charlstm.model.stack import (ModelCache, as_one_hot, backward, dropout_masks, forward, init_params, input_table,
                                  layer_params,
                                  layer_values, loss_and_grads, param_shapes)
from charlstm.model.step import Stepper

__all__ = ["ModelConfig", "State", "zero_state", "ModelCache", "param_shapes", "input_table", "as_one_hot", "layer_params", "layer_values",
           "init_params", "dropout_masks", "forward", "backward", "loss_and_grads", "Stepper"]
