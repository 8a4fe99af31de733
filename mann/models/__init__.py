"""Keras models: backbones without memory (conv4, mlp); all run through stateless_call."""

from mann.models.conv4 import conv4
from mann.models.conv4 import conv4_features
from mann.models.mlp import mlp
from mann.models.batch_norm import BatchNormalization
from mann.models.mann import lstm
from mann.models.mann import mann
from mann.models.weight_groups import adapted_weights
from mann.models.weight_groups import weight_groups
