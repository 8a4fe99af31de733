"""Runs one Keras model for T tasks at once, each task with its own weights.

MAML adapts a copy of the weights per task, so a meta-batch is T different networks.
Mapping a per-task function over the tasks (tf.map_fn) runs T small graphs one after
the other; this module instead runs the T networks as single batched ops:

  Conv2D:  the tasks are folded into the channel axis, images [B, H, W, T*C], and the
           T kernels become one grouped convolution (T groups of C input channels);
  BatchNormalization: per-task, per-channel moments of the folded tensor;
  Dense:   one batched matmul, einsum("tbd,tdu->tbu");
  ReLU, Activation, MaxPooling2D: elementwise or per channel, layout-free (a softmax or
           other non-elementwise activation only where the tasks are not folded);
  Flatten: unfolds back to [T, B, H*W*C] in Keras's (h, w, c) order.

The loss of task t depends on the weights of task t only, so the gradient of the sum
of the task losses with respect to the stacked weights [T, ...] holds each task's own
gradient: one backward pass adapts every task. Graph size does not depend on T, all
shapes are static, and every op is one XLA/TPU can compile.

Every task of a meta-batch starts its inner loop from the same weights. With
shared_kernels=True, task_weights gives the conv kernels as SharedKernel (the one
initialisation, not T copies) and the pass runs them, while they are shared, as
ordinary convolutions over all T*B images, [T*B, H, W, C] (tasks not folded; batch norm
then per task op by op); MAML's first inner step forms each task's kernel gradient
from the recorded inputs and output gradients as one grouped filter gradient, after
which the kernels are per-task tensors and the passes grouped convolutions as above.
The same values and meta-gradients (tests/models/task_batched_test.py); measured here
(results/shared_first_step.json), the conv4 5w1s second-order meta-gradient takes 0.86x
the grouped one's time at 1 query per class, 0.95x at 15, and first order gains nothing
(0.99x-1.0x). The tasks' own gradients of the initial kernels are never formed (no
task_update_cosine).

TF's CPU kernels have grouped-convolution gradients only where oneDNN runs the op
(float32; bfloat16 on CPUs with AVX-512 or AMX): mann.models.grouped_convolution tries
them once per dtype and picks the form, a float32 grouped convolution with casts around
it for bfloat16 where its own kernels are missing, T ordinary convolutions where no
grouped kernel exists (float64 gradient checks), exact but slow.

Mixed precision follows each layer's Keras dtype policy, as the layer's own call does:
under "mixed_bfloat16" the weights stay float32 and are cast to bfloat16 where a
convolution or matmul reads them, batch norm normalises in float32, and the outputs are
bfloat16 (the objectives reduce them in float32). A folded bfloat16 tensor goes into TF's
fused batch norm as it is: the kernel computes in float32 (the same output, bit for bit,
as casting around it), its gradient's gradient casts to float32 too, and the casts
around it left the mixed step as slow as float32's on a CPU with AMX
(results/batch_norm_bfloat16/).
"""

import math
from typing import Optional, Sequence

import keras
import tensorflow as tf

from mann.models import batch_norm
from mann.models import grouped_convolution
from mann.models import low_rank
from mann.models import task_engine

_ELEMENTWISE = (keras.layers.ReLU, keras.layers.Activation)
_SUPPORTED = (
  keras.layers.InputLayer,
  keras.layers.Conv2D,
  keras.layers.BatchNormalization,
  keras.layers.MaxPooling2D,
  keras.layers.Flatten,
  keras.layers.Dense,
) + _ELEMENTWISE


# Activations that act on each value alone, so on the tasks' folded channels too; any
# other (softmax across channels, a custom function) would mix the tasks.
_ELEMENTWISE_ACTIVATIONS = frozenset(
  {
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "hard_swish",
    "hard_silu",
    "mish",
    "exponential",
  }
)


def _activation_name(layer) -> str:
  function = layer.activation if hasattr(layer, "activation") else None
  return getattr(function, "__name__", repr(function))


def unsupported_reason(model: keras.Model) -> Optional[str]:
  """None when TaskBatchedModel can run `model`, else why not (one line)."""
  if not isinstance(model, keras.Sequential):
    return f"{model.name} is not a keras.Sequential model"
  folded = False  # as stateless_call lays the tasks out: folded into channels or not
  for layer in model.layers:
    if not isinstance(layer, _SUPPORTED):
      return f"layer {layer.name} ({type(layer).__name__}) has no task-batched form"
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
      folded = True
    elif isinstance(layer, (keras.layers.Flatten, keras.layers.Dense)):
      folded = False
    if (
      isinstance(layer, keras.layers.Conv2D)
      or (folded and isinstance(layer, keras.layers.Activation))
    ) and _activation_name(layer) not in _ELEMENTWISE_ACTIVATIONS:
      return (
        f"layer {layer.name}: activation {_activation_name(layer)} on the tasks' "
        f"folded channels would mix tasks; use an elementwise one (relu, ...)"
      )
    if isinstance(layer, keras.layers.BatchNormalization) and not isinstance(
      layer, batch_norm.BatchNormalization
    ):
      return (
        f"batch norm layer {layer.name} is Keras's, whose second derivative drops "
        f"a term; use mann.models.BatchNormalization (same weights, exact)"
      )
    if isinstance(layer, keras.layers.Conv2D):
      if (
        type(layer) is not keras.layers.Conv2D
        or layer.data_format != "channels_last"
        or tuple(layer.dilation_rate) != (1, 1)
        or layer.groups != 1
      ):
        return f"conv layer {layer.name}: only channels_last, undilated, ungrouped Conv2D"
    if isinstance(layer, keras.layers.BatchNormalization):
      if layer.axis not in (-1, len(layer.input.shape) - 1):
        return f"batch norm layer {layer.name} normalises axis {layer.axis}, not the last"
      if layer.renorm or not layer.trainable:
        return f"batch norm layer {layer.name} uses renorm or is frozen"
    if isinstance(layer, keras.layers.MaxPooling2D) and layer.data_format != "channels_last":
      return f"pooling layer {layer.name} is not channels_last"
  owned = [id(w) for layer in model.layers for w in layer.trainable_weights]
  if owned != [id(w) for w in model.trainable_weights]:
    return f"{model.name}'s weights are not its layers' weights in layer order"
  return None


def _fold(x: tf.Tensor) -> tf.Tensor:
  """[T, B, H, W, C] -> [B, H, W, T*C], channel index t*C + c."""
  tasks, batch, height, width, channels = x.shape
  x = tf.transpose(x, [1, 2, 3, 0, 4])
  return tf.reshape(x, [batch, height, width, tasks * channels])


def _unfold(x: tf.Tensor, num_tasks: int) -> tf.Tensor:
  """[B, H, W, T*C] -> [T, B, H, W, C]."""
  batch, height, width, folded = x.shape
  x = tf.reshape(x, [batch, height, width, num_tasks, folded // num_tasks])
  return tf.transpose(x, [3, 0, 1, 2, 4])


@tf.custom_gradient
def _add_bias(x: tf.Tensor, bias: tf.Tensor):
  """tf.nn.bias_add(x, bias) (which the graph optimiser fuses into the convolution before
  it, rounding once in bfloat16), whose bias gradient is a matmul, not a BiasAddGrad.

  oneDNN's graph pass fuses a filter gradient with a BiasAddGrad of the same output
  gradient without checking that neither depends on the other. In a second-order step
  one does (the inner bias gradient feeds the adapted weights, which feed the outer
  filter gradient of that same inner output gradient): the fused graph had a cycle and
  did not run ("N nodes in a cycle"), for some graph orders (PYTHONHASHSEED), once batch
  norm's second derivative was in closed form. The bias gradient here is a matmul of a
  row of ones: never fused, faster than BiasAddGrad or a Sum on its own (0.4x-0.9x of
  either at conv4's sizes, by hand on an AMX Xeon), and in bfloat16 it accumulates in
  float32 where BiasAddGrad accumulates in bfloat16 (tests/meta/mixed_precision_test.py).
  """

  def gradient(upstream):
    positions = math.prod(upstream.shape[:-1])
    ones = tf.ones([1, positions], upstream.dtype)
    rows = tf.reshape(upstream, [positions, upstream.shape[-1]])
    return upstream, tf.matmul(ones, rows)[0]

  return tf.nn.bias_add(x, bias), gradient


def _per_task(weight: tf.Tensor) -> tf.Tensor:
  """[T, C] -> [T*C], in the folded channel order."""
  return tf.reshape(weight, [-1])


def grouped_conv2d(x: tf.Tensor, kernels: tf.Tensor, *, strides, padding: str) -> tf.Tensor:
  """T convolutions in one: x [B, H, W, T*C], kernels [T, kh, kw, C, F] -> [B, H', W', T*F]
  in x's dtype.

  Group t convolves channels t*C..t*C+C-1 with kernels[t]; its outputs are channels
  t*F..t*F+F-1. The kernels run in the form grouped_convolution.kernel_path picks.
  """
  tasks, kernel_h, kernel_w, channels, filters = kernels.shape
  padding = padding.upper()
  path = grouped_convolution.kernel_path(x.dtype)
  if path == grouped_convolution.PER_TASK:
    return tf.concat(
      [
        tf.nn.conv2d(part, kernels[t], strides=strides, padding=padding)
        for t, part in enumerate(tf.split(x, tasks, axis=-1))
      ],
      axis=-1,
    )
  kernel_dtype = tf.float32 if path == grouped_convolution.GROUPED_FLOAT32 else x.dtype
  grouped = tf.reshape(
    tf.transpose(kernels, [1, 2, 3, 0, 4]), [kernel_h, kernel_w, channels, tasks * filters]
  )
  y = tf.nn.conv2d(
    tf.cast(x, kernel_dtype), tf.cast(grouped, kernel_dtype), strides=strides, padding=padding
  )
  return tf.cast(y, x.dtype)


def grouped_conv2d_kernel_gradients(
  x: tf.Tensor, output_gradients: tf.Tensor, kernel_shape, *, strides, padding: str
) -> tf.Tensor:
  """Each task's kernel gradient of T convolutions: x [T, B, H, W, C] their inputs,
  output_gradients [T, B, H', W', F] the loss gradients of their outputs ->
  [T, kh, kw, C, F] (kernel_shape [kh, kw, C, F]), in x's dtype or, where bfloat16 runs
  as float32 grouped kernels (grouped_convolution.GROUPED_FLOAT32), in float32. One
  grouped filter gradient of the folded tensors where the kernels exist; per task
  otherwise (float64 checks on CPU)."""
  num_tasks = x.shape[0]
  kernel_h, kernel_w, channels, filters = kernel_shape
  options = dict(strides=[1, *strides, 1], padding=padding.upper())
  path = grouped_convolution.kernel_path(x.dtype)
  if path == grouped_convolution.PER_TASK:
    return tf.stack(
      [
        tf.raw_ops.Conv2DBackpropFilter(
          input=x[t], filter_sizes=list(kernel_shape), out_backprop=output_gradients[t], **options
        )
        for t in range(num_tasks)
      ]
    )
  if path == grouped_convolution.GROUPED_FLOAT32:
    x, output_gradients = tf.cast(x, tf.float32), tf.cast(output_gradients, tf.float32)
  grouped = tf.raw_ops.Conv2DBackpropFilter(
    input=_fold(x),
    filter_sizes=[kernel_h, kernel_w, channels, num_tasks * filters],
    out_backprop=_fold(output_gradients),
    **options,
  )
  grouped = tf.reshape(grouped, [kernel_h, kernel_w, channels, num_tasks, filters])
  return tf.transpose(grouped, [3, 0, 1, 2, 4])


class SharedKernel(low_rank.RecordedKernel):
  """T tasks' conv kernels while they are all the initialisation: base [kh, kw, C, F].

  conv2d runs one ordinary convolution of all tasks' images; recording, it keeps each
  call's (inputs, outputs), from which sgd_step forms each task's kernel gradient.
  """

  tensors_after_a_step = True

  def __init__(self, base: tf.Tensor, num_tasks: int, *, strides, padding: str, uses=None):
    self.base = base
    self.num_tasks = num_tasks
    self.strides = tuple(strides)
    self.padding = padding
    self.uses = uses

  def conv2d(self, x: tf.Tensor, dtype) -> tf.Tensor:
    """x [T, B, H, W, C] (in `dtype`) -> [T, B, H', W', F], the kernel cast to dtype."""
    num_tasks, batch = x.shape[:2]
    flat = tf.reshape(x, [num_tasks * batch, *x.shape[2:]])
    kernel_dtype = dtype
    if grouped_convolution.kernel_path(dtype) == grouped_convolution.GROUPED_FLOAT32:
      kernel_dtype = tf.float32  # the dtype's values (kernel rounded), float32's kernels
    kernel = tf.cast(tf.cast(self.base, dtype), kernel_dtype)
    z = tf.nn.conv2d(
      tf.cast(flat, kernel_dtype), kernel, strides=self.strides, padding=self.padding.upper()
    )
    z = tf.cast(z, dtype)
    if self.uses is not None:
      self.uses.append((x, z))
    return tf.reshape(z, [num_tasks, batch, *z.shape[1:]])

  def dense(self) -> tf.Tensor:
    return tf.broadcast_to(self.base[None], self.shape)

  def recording(self) -> "SharedKernel":
    return SharedKernel(
      self.base, self.num_tasks, strides=self.strides, padding=self.padding, uses=[]
    )

  def sgd_step(self, rate, output_gradients, first_order):
    """[T, kh, kw, C, F]: the initialisation minus rate times each task's gradient."""
    if not self.uses:
      return SharedKernel(self.base, self.num_tasks, strides=self.strides, padding=self.padding)
    gradient = 0
    for (x, z), dz in zip(self.uses, output_gradients):
      dz = tf.reshape(dz, [*x.shape[:2], *z.shape[1:]])
      gradient += grouped_conv2d_kernel_gradients(
        x, dz, self.base.shape, strides=self.strides, padding=self.padding
      )
    gradient = tf.cast(gradient, self.base.dtype)
    if first_order:
      gradient = tf.stop_gradient(gradient)
    return self.base[None] - rate * gradient


class TaskBatchedModel(task_engine.TaskEngine):
  """A Keras model run functionally for T tasks, each with its own weights.

  `batched.stateless_call(weights, non_trainable, x, training=...)` is the task-batched
  counterpart of `model.stateless_call`, so code written for one task (mann.meta's
  inner loop) runs all tasks when handed this object in place of the model.
  """

  def __init__(self, model: keras.Model, *, shared_kernels: bool = False):
    """shared_kernels: task_weights gives the conv kernels as SharedKernel (see the
    module docstring)."""
    reason = unsupported_reason(model)
    if reason is not None:
      raise ValueError(f"cannot batch tasks of {model.name}: {reason}")
    self.model = model
    self.shared_kernels = shared_kernels

  def task_weights(self, weights: list[tf.Tensor], num_tasks: int) -> list:
    """The initial weights of T tasks: [T, *shape] broadcasts, the conv kernels as
    SharedKernel with shared_kernels."""
    kernels = {
      id(layer.kernel): layer
      for layer in self.model.layers
      if isinstance(layer, keras.layers.Conv2D) and self.shared_kernels
    }
    return [
      SharedKernel(w, num_tasks, strides=kernels[id(v)].strides, padding=kernels[id(v)].padding)
      if id(v) in kernels
      else tf.broadcast_to(w[None], [num_tasks, *w.shape])
      for w, v in zip(weights, self.model.trainable_weights)
    ]

  def stateless_call(
    self,
    weights: list[tf.Tensor],
    non_trainable: list[tf.Tensor],
    x: tf.Tensor,
    *,
    training: bool,
    example_weights: Optional[Sequence[int]] = None,
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """Args:
      weights: model.trainable_weights' values with a leading task axis, [T, *shape];
        a conv kernel may be a SharedKernel instead (task_weights).
      non_trainable: model.non_trainable_weights' values (batch-norm running
        statistics), shared by the tasks, [*shape].
      x: inputs [T, B, ...].
      training: batch norm normalises with each task's batch moments (True) or with
        the running statistics (False).
      example_weights: B counts, one per example of the batch axis (the same for
        every task): training-mode moments count example b that many times, as if it
        were repeated in the batch (a sequence model's shared support prefix,
        encoded once). None: each once.

    Returns:
      outputs [T, B, ...], and the non-trainable weights as each task's forward pass
      would leave them, [T, *shape] (with training=True the running statistics moved
      toward that task's moments, as Keras's layer does).
    """
    num_tasks = x.shape[0]
    weights, non_trainable = list(weights), list(non_trainable)
    new_non_trainable = []
    folded = False  # x is [T, B, ...] (task-major) or [B, H, W, T*C] (folded)
    for layer in self.model.layers:
      layer_weights = [weights.pop(0) for _ in layer.trainable_weights]
      layer_statistics = [non_trainable.pop(0) for _ in layer.non_trainable_weights]
      if isinstance(layer, keras.layers.InputLayer):
        continue
      compute = lambda t, layer=layer: tf.cast(t, layer.compute_dtype)
      if isinstance(layer, keras.layers.Conv2D) and isinstance(layer_weights[0], SharedKernel):
        if folded:  # an ordinary convolution reads the tasks' images in the batch axis
          x, folded = _unfold(x, num_tasks), False
        x = layer_weights[0].conv2d(compute(x), layer.compute_dtype)
        if layer.use_bias:
          x = x + compute(layer_weights[1])[:, None, None, None, :]
        x = layer.activation(x)
      elif isinstance(layer, keras.layers.Conv2D):
        if not folded:
          x, folded = _fold(x), True
        x = grouped_conv2d(
          compute(x), compute(layer_weights[0]), strides=layer.strides, padding=layer.padding
        )
        if layer.use_bias:
          x = _add_bias(x, compute(_per_task(layer_weights[1])))
        x = layer.activation(x)
      elif isinstance(layer, keras.layers.BatchNormalization):
        normalised, statistics = self._batch_norm(
          layer,
          layer_weights,
          layer_statistics,
          x,
          num_tasks,
          folded=folded,
          training=training,
          example_weights=example_weights,
        )
        x = tf.cast(normalised, x.dtype)
        new_non_trainable += statistics
      elif isinstance(layer, keras.layers.MaxPooling2D):
        pool = lambda t, layer=layer: tf.nn.max_pool2d(
          t, layer.pool_size, layer.strides, layer.padding.upper()
        )
        if folded:
          x = pool(x)
        else:  # [T, B, H, W, C]: the tasks' images in the batch axis
          pooled = pool(tf.reshape(x, [-1, *x.shape[2:]]))
          x = tf.reshape(pooled, [num_tasks, x.shape[1], *pooled.shape[1:]])
      elif isinstance(layer, keras.layers.Flatten):
        if folded:
          x, folded = _unfold(x, num_tasks), False
        x = tf.reshape(x, [num_tasks, x.shape[1], -1])
      elif isinstance(layer, keras.layers.Dense):
        if folded:
          x, folded = _unfold(x, num_tasks), False
        x = tf.einsum("tb...d,tdu->tb...u", compute(x), compute(layer_weights[0]))
        if layer.use_bias:
          bias = compute(layer_weights[1])
          x = x + tf.reshape(bias, [num_tasks] + [1] * (x.shape.rank - 2) + [-1])
        x = layer.activation(x)
      else:  # elementwise
        x = layer.call(x)
    if folded:
      x = _unfold(x, num_tasks)
    return x, new_non_trainable

  @staticmethod
  def _batch_norm(
    layer, layer_weights, statistics, x, num_tasks, *, folded, training, example_weights=None
  ):
    """Per-task batch norm of x ([B, H, W, T*C] folded, or [T, B, ..., C])."""
    channels = layer.moving_mean.shape[0]
    rest = list(layer_weights)
    gamma = rest.pop(0) if layer.scale else None
    beta = rest.pop(0) if layer.center else None
    moving_mean, moving_variance = statistics
    if folded:
      axes = [0, 1, 2]
      shape = [num_tasks * channels]  # broadcasts over [B, H, W, T*C]
    else:
      axes = list(range(1, x.shape.rank - 1))
      shape = [num_tasks] + [1] * (x.shape.rank - 2) + [channels]
    fusable = training and x.dtype in (tf.float32, tf.bfloat16) and example_weights is None
    if fusable and folded:
      return TaskBatchedModel._fused_batch_norm(layer, gamma, beta, statistics, x, num_tasks)
    if fusable and x.dtype == tf.bfloat16 and x.shape.rank == 5:
      # [T, B, H, W, C], the shared first step's: folded into the fused kernel, which
      # spares the casts to float32 and back; in float32 the two transposes cost more
      # than the op-by-op form (the 5w1s step 1.16-1.26x as long, 3 runs in turns).
      y, new_statistics = TaskBatchedModel._fused_batch_norm(
        layer, gamma, beta, statistics, _fold(x), num_tasks
      )
      return _unfold(y, num_tasks), new_statistics
    # In float32 at least, as Keras's layer normalises 16-bit inputs.
    x = tf.cast(x, tf.float32) if x.dtype in (tf.bfloat16, tf.float16) else x
    if training:
      # Both moments with every gradient path, as mann.models.BatchNormalization.
      if example_weights is None:
        mean = tf.reduce_mean(x, axis=axes, keepdims=True)
        variance = tf.reduce_mean(tf.square(x - mean), axis=axes, keepdims=True)
      else:
        # Weights w_b / (sum(w) * positions) sum to 1 over the reduced axes.
        batch_axis = 0 if folded else 1
        positions = math.prod(x.shape[a] for a in axes if a != batch_axis)
        counts = tf.constant(example_weights, x.dtype)
        shape_of_weights = [1] * x.shape.rank
        shape_of_weights[batch_axis] = len(example_weights)
        frequency = tf.reshape(counts / (float(sum(example_weights)) * positions), shape_of_weights)
        mean = tf.reduce_sum(x * frequency, axis=axes, keepdims=True)
        variance = tf.reduce_sum(tf.square(x - mean) * frequency, axis=axes, keepdims=True)
      task_mean = tf.reshape(mean, [num_tasks, channels])
      task_variance = tf.reshape(variance, [num_tasks, channels])
      momentum = layer.momentum  # a Python float (tf.cast would round it to float32)
      new_statistics = [
        tf.stop_gradient(moving_mean * momentum + task_mean * (1 - momentum)),
        tf.stop_gradient(moving_variance * momentum + task_variance * (1 - momentum)),
      ]
    else:
      mean = tf.reshape(tf.tile(moving_mean[None], [num_tasks, 1]), shape)
      variance = tf.reshape(tf.tile(moving_variance[None], [num_tasks, 1]), shape)
      new_statistics = [tf.tile(s[None], [num_tasks, 1]) for s in statistics]
    # The op Keras's layer ends in, so that both round alike.
    x = tf.nn.batch_normalization(
      x,
      mean,
      variance,
      offset=None if beta is None else tf.reshape(beta, shape),
      scale=None if gamma is None else tf.reshape(gamma, shape),
      variance_epsilon=layer.epsilon,
    )
    return x, new_statistics

  @staticmethod
  def _fused_batch_norm(layer, gamma, beta, statistics, x, num_tasks):
    """Training-mode batch norm of folded x [B, H, W, T*C] (float32, or bfloat16 normalised
    in float32 inside the kernel) in TF's fused kernel.

    The per-task normalisation of large query batches is memory-bound: the fused op
    reads x twice where the op-by-op form makes a dozen passes, and its gradient is one
    kernel too. Its second derivative is exact (the mean's path through the variance
    included) and in closed form (batch_norm.fused_batch_norm_training). CPU kernels
    exist for float32 and bfloat16, hence the dtype check.
    """
    channels = layer.moving_mean.shape[0]
    folded_channels = num_tasks * channels
    scale = tf.reshape(gamma, [-1]) if gamma is not None else tf.ones([folded_channels])
    offset = tf.reshape(beta, [-1]) if beta is not None else tf.zeros([folded_channels])
    y, mean, variance = batch_norm.fused_batch_norm_training(
      x, scale, offset, epsilon=layer.epsilon
    )
    momentum = layer.momentum
    moving_mean, moving_variance = statistics
    new_statistics = [
      tf.stop_gradient(
        moving_mean * momentum + tf.reshape(mean, [num_tasks, channels]) * (1 - momentum)
      ),
      tf.stop_gradient(
        moving_variance * momentum + tf.reshape(variance, [num_tasks, channels]) * (1 - momentum)
      ),
    ]
    return y, new_statistics
