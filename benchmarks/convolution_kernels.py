"""conv4's grouped convolution kernels in float32 and bfloat16: timings and errors
(benchmarks/conv_kernels.py's measurements, here without flags so that tests import
them)."""

from typing import Optional

from benchmarks import interleaved

# (input extent, input channels) of conv4's layers on 28x28x1 with 64 filters.
CONV4_LAYERS = ((28, 1), (14, 64), (7, 64), (4, 64))
FILTERS = 64
# (images, extent, channels, stride): the stride exceeds the extent (and one control).
CHECK_SHAPES = ((5, 1, 64, 2), (75, 1, 64, 2), (5, 2, 64, 3), (5, 2, 64, 2))


def missing_kernels() -> Optional[str]:
  """None where TF's bfloat16 grouped kernels run here, else why this benchmark has
  nothing to time (one line)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann.models import grouped_convolution  # pylint: disable=g-import-not-at-top

  if grouped_convolution.grouped_kernels_work(tf.bfloat16):
    return None
  return (
    "this machine's TensorFlow has no bfloat16 grouped-convolution kernels (oneDNN's "
    "bfloat16 path needs AVX-512 or AMX), which this benchmark times; the task-batched "
    "engine runs them as float32 kernels there, timed by python3 -m benchmarks.step_time "
    "--precisions=mixed_bfloat16_fallback"
  )


def _kernels(x, kernel, strides):
  """The three convolution kernels of x [B, H, W, C] and kernel [3, 3, C/groups, F] as
  functions of their dtype: {name: tf.function of () in that dtype}."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  options = dict(strides=[1, strides, strides, 1], padding="SAME")
  output_shape = tf.nn.conv2d(x, kernel, strides, "SAME").shape
  output_gradient = tf.random.stateless_normal(output_shape, seed=[1, 2])

  def make(dtype):
    cast = lambda t: tf.cast(tf.cast(t, tf.bfloat16), dtype)  # the same rounded inputs
    x_, kernel_, gradient_ = cast(x), cast(kernel), cast(output_gradient)
    return {
      "forward": tf.function(lambda _: tf.nn.conv2d(x_, kernel_, strides, "SAME")),
      "input_gradient": tf.function(
        lambda _: tf.raw_ops.Conv2DBackpropInput(
          input_sizes=x.shape, filter=kernel_, out_backprop=gradient_, **options
        )
      ),
      "filter_gradient": tf.function(
        lambda _: tf.raw_ops.Conv2DBackpropFilter(
          input=x_, filter_sizes=kernel.shape, out_backprop=gradient_, **options
        )
      ),
    }

  return make(tf.float32), make(tf.bfloat16)


def _relative_error(got, want) -> float:
  import numpy as np  # pylint: disable=g-import-not-at-top

  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def tasks_in_batch(x, kernel, num_tasks):
  """The same images and multiply-adds as one ordinary convolution: x [B, H, W, T*C]
  (tasks folded into channels) -> [T*B, H, W, C], unfolded as the batched model unfolds
  it, and kernel [kh, kw, C, T*F] -> the first task's [kh, kw, C, F]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann.models import task_batched  # pylint: disable=g-import-not-at-top

  images = task_batched._unfold(x, num_tasks)  # pylint: disable=protected-access
  images = tf.reshape(images, [-1, *images.shape[2:]])
  return images, kernel[..., : kernel.shape[-1] // num_tasks]


def measure_layer(batch, extent, channels, num_tasks, strides, repeats, ordinary=False) -> dict:
  """Seconds per call of each kernel in both dtypes, bfloat16 over float32, and the
  bfloat16 results' errors against float32's. ordinary=True also times each kernel as
  one ordinary convolution of the same images and multiply-adds (tasks_in_batch), what
  the grouping itself costs: ordinary_*_seconds and grouped_over_ordinary_*."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  x = tf.random.stateless_uniform([batch, extent, extent, num_tasks * channels], seed=[0, 1])
  kernel = tf.random.stateless_normal([3, 3, channels, num_tasks * FILTERS], seed=[0, 2])
  variants = {"": _kernels(x, kernel, strides)}
  if ordinary:
    images, first_kernel = tasks_in_batch(x, kernel, num_tasks)
    variants["ordinary_"] = _kernels(images, first_kernel, strides)
  functions = {
    f"{prefix}{name}_{dtype}": f
    for prefix, (full, half) in variants.items()
    for dtype, kernels in (("float32", full), ("bfloat16", half))
    for name, f in kernels.items()
  }
  timings, values = interleaved.time_in_turns(functions, tf.constant(0), repeats)
  seconds = lambda key: timings[key]["seconds_per_call"]
  result = {"batch": batch, "extent": extent, "channels": channels, "tasks": num_tasks}
  for name in variants[""][0]:
    result[name] = {
      "float32_seconds": seconds(f"{name}_float32"),
      "bfloat16_seconds": seconds(f"{name}_bfloat16"),
      "bfloat16_over_float32": seconds(f"{name}_bfloat16") / seconds(f"{name}_float32"),
      "bfloat16_relative_error": _relative_error(
        values[f"{name}_bfloat16"][0], values[f"{name}_float32"][0]
      ),
    }
    for dtype in ("float32", "bfloat16") if ordinary else ():
      result[name][f"ordinary_{dtype}_seconds"] = seconds(f"ordinary_{name}_{dtype}")
      result[name][f"grouped_over_ordinary_{dtype}"] = seconds(f"{name}_{dtype}") / seconds(
        f"ordinary_{name}_{dtype}"
      )
  return result


def check_filter_gradient(batch, extent, channels, strides, calls=5) -> dict:
  """The bfloat16 filter gradient's relative error against float32's in each of `calls`
  calls (a kernel that reads memory it never wrote errs in some calls only; a
  non-finite error is written as null)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  x = tf.random.stateless_uniform([batch, extent, extent, channels], seed=[0, 1])
  kernel = tf.random.stateless_normal([3, 3, channels, FILTERS], seed=[0, 2])
  full, half = _kernels(x, kernel, strides)
  want = full["filter_gradient"](0).numpy()
  errors = [_relative_error(half["filter_gradient"](0), want) for _ in range(calls)]
  return {
    "batch": batch,
    "extent": extent,
    "channels": channels,
    "strides": strides,
    "relative_errors": errors,
  }
