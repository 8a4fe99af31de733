"""Batch normalisation whose second derivatives are exact, as MAML's meta-gradient needs.

Keras's BatchNormalization (TF backend) takes its batch statistics from tf.nn.moments,
which computes the variance as mean((x - stop_gradient(mean))**2). The first
derivative is unaffected (the mean's path contributes zero), but the derivative of
that derivative loses the mean's term, so a second-order MAML meta-gradient through
a batch-normalised inner step is off (by 0.5% relative on a small network, in the
weights before the norm; see tests/models/batch_norm_test.py and
tests/meta/maml_test.py). This layer computes both moments with every gradient path.
"""

import keras
from keras import ops


class BatchNormalization(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization with exact gradients of all orders through the
  batch statistics (no stop_gradient in the variance). Same weights, same config."""

  def _moments(self, inputs, mask):
    if mask is not None or self.synchronized:
      return super()._moments(inputs, mask)
    mean = ops.mean(inputs, axis=self._reduction_axes, keepdims=True)
    variance = ops.mean(ops.square(inputs - mean), axis=self._reduction_axes, keepdims=True)
    return ops.squeeze(mean, self._reduction_axes), ops.squeeze(variance, self._reduction_axes)
