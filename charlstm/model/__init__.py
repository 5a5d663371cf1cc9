"""The network over any cell: its config, parameters, forward and backward passes, and the
one-symbol step for decoding; and the models that label whole examples with the same cells
(sequence.py: the stack, one direction or both; labels.py: a classifier and a tagger).
Everything above (training, decoding, analysis, export) comes here, never into a cell's internals."""

from charlstm.model.config import LabelSet, ModelConfig, State, label_row, unconditioned, zero_state
from charlstm.model.stack import (ModelCache, as_one_hot, backward, dropout_masks, forward, init_params, input_rows,
                                  input_table, joint_ids, label_offset, layer_params, symbol_ids,
                                  layer_values, loss_and_grads, param_shapes)
from charlstm.model.step import Stepper
from charlstm.model.sequence import (SequenceConfig, init_sequence_params, reverse_within, sequence_backward,
                                     sequence_dropout_masks, sequence_forward, sequence_param_shapes)
from charlstm.model.labels import (classify_loss, classify_probs, pool_backward, pool_forward, tag_loss,
                                   tag_probs)

__all__ = ["ModelConfig", "LabelSet", "State", "zero_state", "label_row", "unconditioned", "ModelCache", "param_shapes",
           "joint_ids", "symbol_ids", "label_offset", "input_rows", "input_table", "as_one_hot", "layer_params", "layer_values",
           "init_params", "dropout_masks", "forward", "backward", "loss_and_grads", "Stepper",
           "SequenceConfig", "sequence_param_shapes", "init_sequence_params", "sequence_dropout_masks",
           "reverse_within", "sequence_forward", "sequence_backward", "pool_forward", "pool_backward",
           "classify_loss", "tag_loss", "classify_probs", "tag_probs"]
