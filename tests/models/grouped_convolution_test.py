"""mann/models/grouped_convolution.py and the forms of mann/models/task_batched.py's
grouped convolutions: the probe tells what this machine's kernels do, the bfloat16
fallback computes float32's convolution of the rounded values and never calls a
bfloat16 convolution kernel, and the fast path (where it exists) computes each task's
own convolution."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann import meta
from mann import models
from mann import training
from mann.data import sampler as sampler_lib
from mann.models import grouped_convolution
from mann.models import task_batched
from tests import class_images

NO_BFLOAT16_KERNELS = (
  "this machine's TensorFlow has no bfloat16 grouped-convolution kernels (oneDNN's "
  "bfloat16 path needs AVX-512 or AMX): the fast path cannot run here; its fallback is "
  "tested by the *fallback* tests of this file"
)


@pytest.fixture(autouse=True)
def fresh_choices():
  """Each test chooses the forms anew, and leaves none behind for the next."""
  grouped_convolution.forget_paths()
  yield
  grouped_convolution.forget_paths()


@pytest.fixture
def fallback(monkeypatch):
  """bfloat16's grouped kernels count as missing, as on a CPU without them."""
  monkeypatch.setenv(grouped_convolution.DISABLE_BFLOAT16_ENV, "1")


@pytest.fixture
def unforced(monkeypatch):
  """The machine's own kernels, whether or not the suite runs under a forced fallback
  (.ci/run runs it both ways)."""
  monkeypatch.delenv(grouped_convolution.DISABLE_BFLOAT16_ENV, raising=False)


def _runs_by_hand(dtype) -> bool:
  """Whether a grouped input and filter gradient run in `dtype` (3 groups of 2
  channels, 5x5 images, stride 2: other shapes than the probe's)."""
  options = dict(strides=[1, 2, 2, 1], padding="SAME")
  x = tf.ones([2, 5, 5, 6], dtype)
  kernel = tf.ones([3, 3, 2, 9], dtype)
  gradient = tf.ones([2, 3, 3, 9], dtype)

  @tf.function
  def gradients():
    return (
      tf.raw_ops.Conv2DBackpropInput(
        input_sizes=x.shape, filter=kernel, out_backprop=gradient, **options
      ),
      tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=kernel.shape, out_backprop=gradient, **options
      ),
    )

  try:
    gradients()
  except tf.errors.OpError:
    return False
  return True


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float64])
def test_the_probe_says_what_the_kernels_do_when_run_by_hand(dtype):
  assert grouped_convolution.grouped_kernels_work(dtype) == _runs_by_hand(dtype)


def test_each_dtype_gets_the_form_its_kernels_allow(unforced):
  del unforced
  float32 = grouped_convolution.GROUPED if _runs_by_hand(tf.float32) else None
  assert grouped_convolution.kernel_path(tf.float32) == (float32 or grouped_convolution.PER_TASK)
  if _runs_by_hand(tf.bfloat16):
    assert grouped_convolution.kernel_path(tf.bfloat16) == grouped_convolution.GROUPED
  else:
    assert grouped_convolution.kernel_path(tf.bfloat16) == (
      grouped_convolution.GROUPED_FLOAT32 if float32 else grouped_convolution.PER_TASK
    )
  # float64 is never computed in float32: exact or per task.
  assert grouped_convolution.kernel_path(tf.float64) in (
    grouped_convolution.GROUPED,
    grouped_convolution.PER_TASK,
  )
  assert set(grouped_convolution.paths_chosen()) == {"float32", "bfloat16", "float64"}


def test_the_environment_variable_sends_bfloat16_alone_to_the_fallback(fallback):
  del fallback
  if not _runs_by_hand(tf.float32):
    pytest.skip("no float32 grouped kernels here either: every dtype runs per task")
  assert grouped_convolution.kernel_path(tf.bfloat16) == grouped_convolution.GROUPED_FLOAT32
  assert grouped_convolution.kernel_path(tf.float32) == grouped_convolution.GROUPED
  line = grouped_convolution.describe("bfloat16", grouped_convolution.GROUPED_FLOAT32)
  assert "float32 grouped kernels" in line and grouped_convolution.DISABLE_BFLOAT16_ENV in line


def _tasks(num_tasks=3, channels=4, filters=5, seed=0):
  """Folded bfloat16 images [B, H, W, T*C] and per-task kernels [T, 3, 3, C, F]."""
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.normal(size=(2, 7, 7, num_tasks * channels)), tf.bfloat16)
  kernels = tf.constant(rng.normal(size=(num_tasks, 3, 3, channels, filters)), tf.bfloat16)
  return x, kernels


def _per_task_float32(x, kernels, strides=2):
  """Task t's own float32 convolution of its bfloat16 values, [B, H', W', T*F] float32."""
  parts = tf.split(tf.cast(x, tf.float32), kernels.shape[0], axis=-1)
  return tf.concat(
    [
      tf.nn.conv2d(part, tf.cast(kernels[t], tf.float32), strides, "SAME")
      for t, part in enumerate(parts)
    ],
    axis=-1,
  )


def _convolution_ops(function, *args) -> dict[str, set[str]]:
  """{op type: the dtypes it runs in} of every convolution op in the traced graph of
  function(*args) and its gradient."""
  graph = tf.function(function).get_concrete_function(*args).graph
  found: dict[str, set[str]] = {}
  for op in graph.get_operations():
    if op.type.startswith("Conv2D"):
      found.setdefault(op.type, set()).add(tf.as_dtype(op.get_attr("T")).name)
  return found


def _mixed_conv4():
  """A 3-way conv4 of 4 filters under Keras's mixed_bfloat16 policy (put back after)."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    return models.conv4(num_classes=3, num_filters=4)
  finally:
    keras.config.set_dtype_policy(previous)


def _forward_and_gradients(x, kernels, output_weights):
  with tf.GradientTape() as tape:
    tape.watch([x, kernels])
    y = task_batched.grouped_conv2d(x, kernels, strides=2, padding="same")
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * output_weights)
  return (y, *tape.gradient(loss, [x, kernels]))


def test_the_fallback_is_float32s_convolution_of_the_rounded_values(fallback):
  """Against each task's float32 convolution and its autodiff gradients (tf.nn.conv2d
  per task, not grouped), rounded to bfloat16 as the fallback's casts round them."""
  del fallback
  if grouped_convolution.kernel_path(tf.bfloat16) != grouped_convolution.GROUPED_FLOAT32:
    pytest.skip("no float32 grouped kernels here either: every dtype runs per task")
  x, kernels = _tasks()
  # bfloat16 values: the output gradient reaches the kernels in bfloat16 (y's dtype).
  output_weights = tf.cast(
    tf.constant(np.random.default_rng(3).normal(size=(2, 4, 4, 15)), tf.bfloat16), tf.float32
  )
  y, x_gradient, kernel_gradient = _forward_and_gradients(x, kernels, output_weights)
  assert (y.dtype, x_gradient.dtype, kernel_gradient.dtype) == (tf.bfloat16,) * 3
  x32, kernels32 = tf.cast(x, tf.float32), tf.cast(kernels, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([x32, kernels32])
    want = _per_task_float32(x32, kernels32)
    loss = tf.reduce_sum(want * output_weights)
  want_gradients = tape.gradient(loss, [x32, kernels32])
  # One bfloat16 rounding of float32 results that differ only in summation order.
  for got, expected in zip([y, x_gradient, kernel_gradient], [want, *want_gradients]):
    np.testing.assert_allclose(
      tf.cast(got, tf.float32), expected, rtol=2**-8, atol=1e-6 * float(tf.reduce_max(expected))
    )
  ops = _convolution_ops(_forward_and_gradients, x, kernels, output_weights)
  assert set(ops) == {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}
  assert all(dtypes == {"float32"} for dtypes in ops.values()), ops


def test_the_fallback_s_kernel_gradients_are_float32s_per_task_filter_gradients(fallback):
  del fallback
  if grouped_convolution.kernel_path(tf.bfloat16) != grouped_convolution.GROUPED_FLOAT32:
    pytest.skip("no float32 grouped kernels here either: every dtype runs per task")
  rng = np.random.default_rng(4)
  x = tf.constant(rng.normal(size=(3, 2, 7, 7, 4)), tf.bfloat16)
  output_gradients = tf.constant(rng.normal(size=(3, 2, 4, 4, 5)), tf.bfloat16)
  got = task_batched.grouped_conv2d_kernel_gradients(
    x, output_gradients, [3, 3, 4, 5], strides=(2, 2), padding="same"
  )
  assert got.dtype == tf.float32
  for t in range(3):
    want = tf.raw_ops.Conv2DBackpropFilter(
      input=tf.cast(x[t], tf.float32),
      filter_sizes=[3, 3, 4, 5],
      out_backprop=tf.cast(output_gradients[t], tf.float32),
      strides=[1, 2, 2, 1],
      padding="SAME",
    )
    np.testing.assert_allclose(got[t], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shared_first_step", [False, True])
def test_a_fallback_maml_step_runs_no_bfloat16_convolution_kernel(fallback, shared_first_step):
  """The whole second-order meta-gradient of a mixed conv4 (the shared first step's
  ordinary convolutions too): every convolution op, forward or gradient, in float32."""
  del fallback
  if grouped_convolution.kernel_path(tf.bfloat16) != grouped_convolution.GROUPED_FLOAT32:
    pytest.skip("no float32 grouped kernels here either: every dtype runs per task")
  model = _mixed_conv4()
  learner = meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    num_inner_steps=1,
    inner_lr=0.4,
    shared_first_step=shared_first_step,
  )
  source = class_images.random_class_images(6, 3, size=28)
  sampler = sampler_lib.FewShotSampler(source, num_ways=3, num_shots=1, num_queries=1, seed=0)
  batch = next(iter(data.meta_batches(sampler, meta_batch_size=2)))
  ops = _convolution_ops(lambda b: learner.compute_gradients(b)[0], batch)
  assert {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"} <= set(ops)
  assert all(dtypes == {"float32"} for dtypes in ops.values()), ops
  gradients, metrics = learner.compute_gradients(batch)
  assert np.isfinite(float(metrics["loss"]))
  assert all(np.all(np.isfinite(g.numpy())) for g in gradients)


def test_the_fast_path_convolves_each_task_with_its_own_kernel_in_bfloat16(unforced):
  del unforced
  if not grouped_convolution.grouped_kernels_work(tf.bfloat16):
    pytest.skip(NO_BFLOAT16_KERNELS)
  assert grouped_convolution.kernel_path(tf.bfloat16) == grouped_convolution.GROUPED
  x, kernels = _tasks(seed=5)
  output_weights = tf.ones([2, 4, 4, 15])
  ops = _convolution_ops(_forward_and_gradients, x, kernels, output_weights)
  assert all(dtypes == {"bfloat16"} for dtypes in ops.values()), ops
  got = task_batched.grouped_conv2d(x, kernels, strides=2, padding="same")
  assert got.dtype == tf.bfloat16
  # oneDNN's bfloat16 kernels accumulate in float32 and round the output once.
  np.testing.assert_allclose(
    tf.cast(got, tf.float32), _per_task_float32(x, kernels), rtol=2**-7, atol=1e-2
  )


def test_a_run_says_which_form_ran_and_on_what_machine(tmp_path, fallback, caplog):
  """results.json and the log of a mixed conv4 run on the fallback: the choice, once."""
  del fallback
  keras.utils.set_random_seed(0)
  model = _mixed_conv4()
  learner = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4)
  source = class_images.random_class_images(6, 3, size=28)
  sampler = sampler_lib.FewShotSampler(source, num_ways=3, num_shots=1, num_queries=1, seed=0)
  with caplog.at_level("INFO"):
    training.train(
      learner=learner,
      optimizer=keras.optimizers.Adam(1e-3),
      make_batches=lambda start, shard: data.meta_batches(
        sampler, meta_batch_size=2, start_step=start, shard=shard
      ),
      num_steps=2,
      workdir=str(tmp_path),
      log_every=1,
    )
  results = json.loads((tmp_path / "results.json").read_text())
  want = grouped_convolution.kernel_path(tf.bfloat16)
  assert results["grouped_convolution"]["bfloat16"] == want
  assert results["machine"]["cpu_count"] >= 1 and results["machine"]["cpu_model"]
  messages = [record.getMessage() for record in caplog.records]
  lines = [m for m in messages if "grouped convolutions in bfloat16" in m]
  assert lines == [
    "grouped convolutions in bfloat16: " + grouped_convolution.describe("bfloat16", want)
  ]
