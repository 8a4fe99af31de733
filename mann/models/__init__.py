"""Keras models: conv4 and MLP backbones (convolutional, feedforward), the MANN and its LSTM
baseline (recurrent), batch norm with exact higher-order gradients; all run through
stateless_call."""

from mann.models.batch_norm import BatchNormalization
from mann.models.convolutional import conv4
from mann.models.convolutional import conv4_features
from mann.models.feedforward import mlp
from mann.models.parameter_groups import adapted_weights
from mann.models.parameter_groups import weight_groups
from mann.models.recurrent import lstm
from mann.models.recurrent import mann
from mann.models.recurrent import memory_cells
from mann.models.recurrent import reads_zeroed

__all__ = [
  "adapted_weights",
  "BatchNormalization",
  "conv4",
  "conv4_features",
  "lstm",
  "mann",
  "memory_cells",
  "mlp",
  "reads_zeroed",
  "weight_groups",
]
