"""Per-task kernels kept as the shared initialisation plus low-rank SGD updates.

A task-batched sequence model (mann.models.task_batched_sequence) multiplies each
step's state by every task's own controller kernel, [T, b, D] x [T, D, U]: a
matrix-vector product per task that reads all T kernels from memory at every step
(32 tasks x 200 units: 37 MB per step) and writes a kernel-sized gradient per step in
the backward pass. MAML's inner SGD gives the kernels a structure that avoids both:
the gradient of a kernel used as z = a W is a sum of outer products of the rows that
entered it and the loss gradients of its outputs,

  W_t = W - sum_k rate_k * A_kt^T G_kt,   A_kt [n_k, D] rows, G_kt [n_k, U] dL/dz,

with n_k the rows of support step k (5 in 5-way 1-shot), so

  a W_t = a W - sum_k rate_k * (a A_kt^T) G_kt:

one GEMM with the shared W for all tasks and rows at once, and two products of width
n_k per task. LowRankKernel is that form; the inner loop (mann.meta.inner_loop.adapt)
records a kernel's uses during the support pass and appends their rows and output
gradients as a factor. The values and every derivative are those of the dense
kernels (tests/models/low_rank_test.py), second order included: the output gradients
are tensors of the outer tape like any inner gradient.
"""

from typing import Optional

import tensorflow as tf


class RecordedKernel:
  """T per-task kernels that an inner step updates from what they record.

  While recording (`recording()`), each product of the kernel with inputs appends
  (inputs, outputs) to `.uses`; the inner loop (mann.meta.inner_loop) differentiates the
  support loss by those outputs and hands the gradients to `sgd_step`, which returns
  the updated kernels. Subclasses: LowRankKernel here, and
  mann.models.task_batched.SharedKernel (convolution kernels at the shared
  initialisation).
  """

  base: tf.Tensor  # the shared initialisation, [*kernel shape]
  num_tasks: int
  uses: Optional[list]
  # Whether sgd_step returns plain [T, ...] tensors (then the inner loop can run the
  # steps after the first as a tf.while_loop).
  tensors_after_a_step: bool = False

  @property
  def shape(self) -> tf.TensorShape:
    return tf.TensorShape([self.num_tasks, *self.base.shape])

  @property
  def dtype(self) -> tf.DType:
    return self.base.dtype

  def dense(self) -> tf.Tensor:
    """The kernels themselves, [T, *kernel shape]."""
    raise NotImplementedError

  def recording(self) -> "RecordedKernel":
    """The same kernels, recording each product in .uses."""
    raise NotImplementedError

  def sgd_step(self, rate: tf.Tensor, output_gradients: list[tf.Tensor], first_order: bool):
    """The kernels minus rate times the support loss's gradient, from the recorded uses
    and the loss gradients of their outputs (in .uses order); first_order: that
    gradient as a constant (FOMAML). Returns a RecordedKernel or a [T, ...] tensor."""
    raise NotImplementedError


class LowRankKernel(RecordedKernel):
  """T per-task kernels [T, D, U]: base [D, U] (shared) minus low-rank factors.

  factors: tuples (rate, rows [T, n, D], output_gradients [T, n, U]).
  """

  def __init__(
    self, base: tf.Tensor, num_tasks: int, factors: tuple = (), uses: Optional[list] = None
  ):
    self.base = base
    self.num_tasks = num_tasks
    self.factors = tuple(factors)
    self.uses = uses  # a list while the inner loop records this kernel's products

  def matmul(self, a: tf.Tensor) -> tf.Tensor:
    """a [T, b, D] -> a W_t per task, [T, b, U]; recorded when recording."""
    num_tasks, rows, depth = a.shape
    z = tf.reshape(
      tf.matmul(tf.reshape(a, [-1, depth]), self.base), [num_tasks, rows, self.base.shape[-1]]
    )
    for rate, factor_rows, output_gradients in self.factors:
      z -= rate * tf.matmul(tf.matmul(a, factor_rows, transpose_b=True), output_gradients)
    if self.uses is not None:
      self.uses.append((a, z))
    return z

  def dense(self) -> tf.Tensor:
    """The kernels themselves, [T, D, U]."""
    kernels = tf.broadcast_to(self.base[None], self.shape)
    for rate, factor_rows, output_gradients in self.factors:
      kernels -= rate * tf.matmul(factor_rows, output_gradients, transpose_a=True)
    return kernels

  def recording(self) -> "LowRankKernel":
    """The same kernels, recording each matmul's (a, z) in .uses."""
    return LowRankKernel(self.base, self.num_tasks, self.factors, uses=[])

  def sgd_step(
    self, rate: tf.Tensor, output_gradients: list[tf.Tensor], first_order: bool
  ) -> "LowRankKernel":
    """W_t - rate * dL/dW_t, from the recorded uses and dL/dz of each (in .uses order).

    first_order: the step's gradient as a constant (FOMAML)."""
    if not self.uses:
      return LowRankKernel(self.base, self.num_tasks, self.factors)
    rows = tf.concat([a for a, _ in self.uses], axis=1)
    gradients = tf.concat(list(output_gradients), axis=1)
    if first_order:
      rows, gradients = tf.stop_gradient(rows), tf.stop_gradient(gradients)
    return LowRankKernel(self.base, self.num_tasks, self.factors + ((rate, rows, gradients),))


def dense(weight) -> tf.Tensor:
  """A weight as a tensor: a RecordedKernel's dense kernels, any tensor itself."""
  return weight.dense() if isinstance(weight, RecordedKernel) else weight


def matmul(a: tf.Tensor, kernel) -> tf.Tensor:
  """a [T, b, D] x per-task kernel [T, D, U] (a tensor or a LowRankKernel) -> [T, b, U]."""
  if isinstance(kernel, LowRankKernel):
    return kernel.matmul(a)
  return tf.matmul(a, kernel)
