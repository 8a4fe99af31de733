"""Outer optimisers: Keras's Adam with its per-variable update as one fused op."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mann")
class FusedAdam(keras.optimizers.Adam):
  """keras.optimizers.Adam whose update of a variable is TensorFlow's fused
  ResourceApplyAdam kernel: the same update (m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
  w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)) and the same slot variables
  and checkpoint, from one op per variable instead of about twenty. Keras builds those
  twenty with Python dispatch at every trace: on the conv4 MAML step (18 variables)
  they were a quarter of the step's trace (tests/training/optimizers_test.py compares
  the two; benchmarks/startup.py). amsgrad falls back to Keras's own update. Learning-rate
  schedules, weight decay and clipping are the base optimiser's, around this update, as
  in Adam (tested); its other options (EMA, gradient accumulation) are too, untested here.
  """

  def update_step(self, gradient, variable, learning_rate):
    """One variable's update; gradient: the variable's shape, any float dtype."""
    if self.amsgrad:
      return super().update_step(gradient, variable, learning_rate)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    index = self._get_variable_index(variable)
    # Handles of the slots' tf.Variables (under a strategy's update, this device's copy).
    tf.raw_ops.ResourceApplyAdam(
      var=variable.handle,
      m=self._momentums[index].value.handle,
      v=self._velocities[index].value.handle,
      beta1_power=tf.pow(beta_1, step),
      beta2_power=tf.pow(beta_2, step),
      lr=tf.cast(learning_rate, dtype),
      beta1=beta_1,
      beta2=beta_2,
      epsilon=tf.cast(self.epsilon, dtype),
      grad=tf.cast(gradient, dtype),
    )
