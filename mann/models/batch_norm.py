"""Batch normalisation whose second derivatives are exact, as MAML's meta-gradient needs.

Keras's BatchNormalization (TF backend) takes its batch statistics from tf.nn.moments,
which computes the variance as mean((x - stop_gradient(mean))**2). The first
derivative is unaffected (the mean's path contributes zero), but the derivative of
that derivative loses the mean's term, so a second-order MAML meta-gradient through
a batch-normalised inner step is off (by 0.5% relative on a small network, in the
weights before the norm; see tests/models/batch_norm_test.py and
tests/meta/maml_test.py). This layer computes both moments with every gradient path.

Under a tf.distribute strategy with several replicas its moments are those of the
whole batch across the replicas (each replica holds a slice of the meta-batch), so that
an R-replica step normalises as the one-replica step does.
"""

import keras
from keras import ops
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mann")
class BatchNormalization(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization with exact gradients of all orders through the
  batch statistics (no stop_gradient in the variance). Same weights, same config."""

  def _moments(self, inputs, mask):
    if mask is not None or self.synchronized:
      return super()._moments(inputs, mask)
    axes = self._reduction_axes
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
      mean = ops.mean(inputs, axis=axes, keepdims=True)
      variance = ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True)
    else:
      add = lambda value: context.all_reduce(tf.distribute.ReduceOp.SUM, value)
      count = add(tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype))
      mean = add(ops.sum(inputs, axis=axes, keepdims=True)) / count
      variance = add(ops.sum(ops.square(inputs - mean), axis=axes, keepdims=True)) / count
    return ops.squeeze(mean, axes), ops.squeeze(variance, axes)
