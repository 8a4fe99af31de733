"""Which form runs the task-batched engine's grouped convolutions, for each dtype.

The engine (mann.models.task_batched) folds T tasks into the channel axis and runs T
convolutions as one grouped convolution. TF's CPU kernels have grouped-convolution
gradients only where oneDNN runs the op: float32, and bfloat16 on CPUs where oneDNN has
a bfloat16 path (AVX-512 or AMX; not an AVX2-only CPU such as an AMD EPYC of the Zen 2-3
generations, where TF's Eigen kernels run bfloat16 and reject the groups). So the form
is chosen per dtype by trying the kernels once on a tiny tensor (never by CPU name):

  grouped          one grouped convolution in the dtype itself;
  grouped_float32  a 16-bit dtype whose grouped gradients are missing: one float32
                   grouped convolution of the 16-bit values, its output cast back
                   (float32 accumulation, as oneDNN's bfloat16 kernels do; the kernels
                   and their speed are float32's);
  per_task         T ordinary convolutions (float64 on CPU, or no oneDNN at all): exact
                   but slower.

On a GPU or TPU every dtype is `grouped`, untried. With the environment variable
MANN_DISABLE_BFLOAT16_GROUPED_CONV=1 bfloat16's grouped kernels count as missing, so a
machine that has them runs (and tests) the fallback.
"""

import os
import threading

import tensorflow as tf

GROUPED = "grouped"
GROUPED_FLOAT32 = "grouped_float32"
PER_TASK = "per_task"
DISABLE_BFLOAT16_ENV = "MANN_DISABLE_BFLOAT16_GROUPED_CONV"

_DESCRIPTIONS = {
  GROUPED: "grouped kernels in {dtype}",
  GROUPED_FLOAT32: (
    "float32 grouped kernels with casts around them (no {dtype} grouped-convolution "
    "gradient in this machine's TensorFlow{why})"
  ),
  PER_TASK: (
    "one ordinary convolution per task (no {dtypes} grouped-convolution gradient in this "
    "machine's TensorFlow{why})"
  ),
}

_SIXTEEN_BIT = (tf.bfloat16, tf.float16)
_lock = threading.Lock()
_paths: dict[str, str] = {}  # dtype name -> form, filled as each dtype is first asked for


def _disabled(dtype: tf.DType) -> bool:
  return dtype == tf.bfloat16 and os.environ.get(DISABLE_BFLOAT16_ENV, "") not in ("", "0")


def _on_accelerator() -> bool:
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def grouped_kernels_work(dtype: tf.DType) -> bool:
  """Whether a grouped convolution, its input gradient and its filter gradient run in
  `dtype` on this machine, tried in a graph (where TF's graph passes pick the kernels,
  as in a training step) on a tiny tensor: 2 groups of 2 channels, a 3x3 image. The
  machine's answer: DISABLE_BFLOAT16_ENV does not change it (kernel_path heeds it)."""
  dtype = tf.as_dtype(dtype)
  options = dict(strides=[1, 1, 1, 1], padding="SAME")

  @tf.function(autograph=False)
  def convolution_and_gradients():
    x = tf.ones([1, 3, 3, 4], dtype)
    kernel = tf.ones([1, 1, 2, 4], dtype)
    # Conv2D + BiasAdd, as the engine's layers run: the pair TF's remapper fuses.
    y = tf.nn.bias_add(tf.raw_ops.Conv2D(input=x, filter=kernel, **options), tf.ones([4], dtype))
    input_gradient = tf.raw_ops.Conv2DBackpropInput(
      input_sizes=x.shape, filter=kernel, out_backprop=y, **options
    )
    filter_gradient = tf.raw_ops.Conv2DBackpropFilter(
      input=x, filter_sizes=kernel.shape, out_backprop=y, **options
    )
    return y, input_gradient, filter_gradient

  with tf.init_scope():  # out of any graph being traced: the probe runs now
    try:
      with tf.device("/CPU:0"):
        convolution_and_gradients()
    except tf.errors.OpError:  # no kernel, or one that rejects the groups (both seen)
      return False
  return True


def kernel_path(dtype) -> str:
  """The form (GROUPED, GROUPED_FLOAT32 or PER_TASK) that runs grouped convolutions in
  `dtype` here; tried once per dtype and process, then remembered. Under
  GROUPED_FLOAT32 the engine's ordinary convolutions in `dtype` (a shared first step's)
  run in float32 too: a CPU without the grouped 16-bit kernels lacks oneDNN's 16-bit
  path, and Eigen's ordinary 16-bit convolutions are far slower (results/performance/README.md)."""
  dtype = tf.as_dtype(dtype)
  with _lock:
    if dtype.name not in _paths:
      if _on_accelerator() or (not _disabled(dtype) and grouped_kernels_work(dtype)):
        path = GROUPED
      elif dtype in _SIXTEEN_BIT and grouped_kernels_work(tf.float32):
        path = GROUPED_FLOAT32
      else:
        path = PER_TASK
      _paths[dtype.name] = path
    return _paths[dtype.name]


def paths_chosen() -> dict[str, str]:
  """{dtype name: form} for every dtype asked for so far in this process (a run's
  grouped convolutions ask while its step is traced)."""
  with _lock:
    return dict(_paths)


def describe(dtype_name: str, path: str) -> str:
  """One line: which kernels run `dtype_name`'s grouped convolutions, and why."""
  dtype = tf.as_dtype(dtype_name)
  why = f"; {DISABLE_BFLOAT16_ENV} is set" if _disabled(dtype) else ""
  tried = dtype.name if dtype not in _SIXTEEN_BIT else f"{dtype.name} or float32"
  return _DESCRIPTIONS[path].format(dtype=dtype.name, dtypes=tried, why=why)


def forget_paths() -> None:
  """Forgets the chosen forms, so that the next call of kernel_path tries again (for
  tests that change DISABLE_BFLOAT16_ENV)."""
  with _lock:
    _paths.clear()
