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


def fused_batch_norm_training(
  x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, *, epsilon: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Training-mode batch norm in TF's fused kernels, with a closed-form second derivative.

  Args:
    x: [B, H, W, C] activations, float32 or bfloat16 (normalised in float32 inside the
      kernel).
    scale, offset: [C] float32.
    epsilon: added to the variance.

  Returns:
    y [B, H, W, C] in x's dtype, and the batch mean and (biased) variance [C], float32,
    which carry no gradient (they feed the moving statistics only).

  The first derivative is TF's fused gradient kernel. TF's own derivative of that kernel
  (its FusedBatchNormGrad gradient) recomputes the first derivative op by op in float32
  and differentiates the composite: tens of elementwise ops on activation-sized tensors,
  most of a second-order MAML step's batch-norm time. Here it is one more fused gradient
  kernel, two per-channel reductions and about ten elementwise passes, from the closed
  form below: the same values up to round-off (tests/models/batch_norm_test.py checks
  every block against autodiff of the plain formula in float64). Per channel, over its
  N = B*H*W positions, with s = 1/sqrt(var + eps), xh = (x - mean) s, g the gradient of
  y and M(.) the mean:

    dx = scale s (g - M(g) - xh M(g xh)),  dscale = N M(g xh),  doffset = N M(g).

  With u, a, b the gradients of dx, dscale, doffset (the second-order pass's inputs),
  and C = M(u g) - M(u) M(g):

    d/dg      = scale s (u - M(u) - xh M(u xh)) + a xh + b
    d/dx      = scale s^2 [xh (3 M(u xh) M(g xh) - C) - M(g xh) (u - M(u))
                           - M(u xh) (g - M(g))] + a s (g - M(g) - xh M(g xh))
    d/dscale  = N s (C - M(u xh) M(g xh)).

  The first line is the fused gradient kernel applied to u (which also returns N M(u)
  and N M(u xh)); the second is written as per-channel coefficients of x, u and g.
  """
  count = x.shape[0] * x.shape[1] * x.shape[2]
  empty = tf.constant([], tf.float32)
  kernel_options = dict(epsilon=epsilon, data_format="NHWC", is_training=True)

  @tf.custom_gradient
  def normalize(x, scale, offset):
    y, mean, corrected_variance, *reserve = tf.raw_ops.FusedBatchNormV3(
      x=x, scale=scale, offset=offset, mean=empty, variance=empty, **kernel_options
    )[:6]
    variance = corrected_variance * ((count - 1) / count)  # the kernel's is Bessel-corrected

    def kernel_gradient(y_backprop):
      """(dx, dscale, doffset) of the fused gradient kernel for this forward pass."""
      return tf.raw_ops.FusedBatchNormGradV3(
        y_backprop=y_backprop,
        x=x,
        scale=scale,
        reserve_space_1=reserve[0],
        reserve_space_2=reserve[1],
        reserve_space_3=reserve[2],
        **kernel_options,
      )[:3]

    @tf.custom_gradient
    def first_derivative(g, x, scale):
      dx, dscale, doffset = kernel_gradient(g)

      def second_derivative(u, a, b):
        s = tf.math.rsqrt(variance + epsilon)
        mean_g, mean_gxh = doffset / count, dscale / count
        du, sum_uxh, sum_u = kernel_gradient(u)
        mean_u, mean_uxh = sum_u / count, sum_uxh / count
        as_float = lambda t: tf.cast(t, tf.float32)  # the products' means in float32
        mean_ug = tf.reduce_mean(as_float(u) * as_float(g), axis=[0, 1, 2])
        c = mean_ug - mean_u * mean_g
        a = tf.zeros_like(scale) if a is None else a
        b = tf.zeros_like(scale) if b is None else b
        in_x = lambda t: tf.cast(t, x.dtype)
        # xh = x s - mean s, so each line is per-channel coefficients times x, u, g.
        d_g = du + x * in_x(a * s) + in_x(b - a * s * mean)
        scale_s2 = scale * s * s
        xh_coefficient = scale_s2 * (3 * mean_uxh * mean_gxh - c) - a * s * mean_gxh
        constant = scale_s2 * (mean_gxh * mean_u + mean_uxh * mean_g) - a * s * mean_g
        d_x = (
          x * in_x(s * xh_coefficient)
          + u * in_x(-scale_s2 * mean_gxh)
          + g * in_x(a * s - scale_s2 * mean_uxh)
          + in_x(constant - mean * s * xh_coefficient)
        )
        d_scale = count * s * (c - mean_uxh * mean_gxh)
        return d_g, d_x, d_scale

      return (dx, dscale, doffset), second_derivative

    def gradient(dy, unused_dmean, unused_dvariance):
      del unused_dmean, unused_dvariance  # stop_gradient'ed below: always zero
      return first_derivative(dy, x, scale)

    return (y, mean, variance), gradient

  y, mean, variance = normalize(x, scale, offset)
  return y, tf.stop_gradient(mean), tf.stop_gradient(variance)
