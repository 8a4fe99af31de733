"""Mixed bfloat16 (Keras's "mixed_bfloat16" policy) through MAML and over the sequence
models: float32 variables, loss and meta-gradients; the task-batched and the per-task
paths agree; the MANN's memory stays float32; the meta-gradient stays near float32's."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann import meta
from mann import models
from mann.data import sampler as sampler_lib
from mann.models import grouped_convolution
from mann.models import task_batched
from tests import class_images
from tests import sequence_models


@contextlib.contextmanager
def _dtype_policy(name):
  """Keras's global dtype policy set to `name`, and put back afterwards."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


@pytest.fixture
def mixed_bfloat16():
  with _dtype_policy("mixed_bfloat16"):
    yield


def _meta_batch():
  source = class_images.random_class_images(20, 10, size=28)
  sampler = sampler_lib.FewShotSampler(source, num_ways=5, num_shots=1, num_queries=2, seed=0)
  return next(iter(data.meta_batches(sampler, meta_batch_size=4)))


def _gradients(task_mapping, inner_steps=1):
  """task_mapping: batched, map_fn, or batched+shared (shared_first_step)."""
  keras.utils.set_random_seed(0)
  model = models.conv4(num_classes=5, num_filters=8)
  mapping, _, shared = task_mapping.partition("+")
  learner = meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    num_inner_steps=inner_steps,
    inner_lr=0.4,
    task_mapping=mapping,
    shared_first_step=bool(shared),
  )
  gradients, metrics = learner.compute_gradients(_meta_batch())
  # Each conv bias is followed by batch norm: its true gradient is 0, its computed one
  # round-off in either precision, so it is left out of the comparisons.
  keep = [not v.path.endswith("conv/bias") for v in model.trainable_variables]
  flat = np.concatenate([g.numpy().ravel() for g, k in zip(gradients, keep) if k])
  return model, gradients, metrics, flat


def _cosine(a, b):
  return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("task_mapping", ["batched", "map_fn", "batched+shared"])
def test_variables_loss_and_meta_gradients_stay_float32(mixed_bfloat16, task_mapping):
  del mixed_bfloat16
  model, gradients, metrics, _ = _gradients(task_mapping)
  assert model.layers[0].compute_dtype == "bfloat16"
  assert {v.dtype for v in model.trainable_variables} == {"float32"}
  assert {g.dtype for g in gradients} == {tf.float32}
  assert metrics["loss"].dtype == tf.float32 and np.isfinite(float(metrics["loss"]))


def test_the_task_batched_path_computes_what_keras_does_per_task(mixed_bfloat16):
  """Where oneDNN has bfloat16 kernels, the same ops but one: the batched conv's bias
  gradient is a matmul (float32 accumulation, 0.16% from the exact sum of a 5x14x14
  bfloat16 gradient), Keras's is BiasAddGrad (3.8%: it accumulates in bfloat16). The
  bias feeds batch norm, so its inner update moves the loss only through rounding:
  measured 1.1e-3 apart in loss, cosine 0.995 (3e-7 and 0.99996 with BiasAddGrad in
  both), the same with the batched convolutions as float32 kernels
  (MANN_DISABLE_BFLOAT16_GROUPED_CONV=1).

  Where it has none, Keras's per-task convolutions run Eigen's bfloat16 kernels:
  emulated with TF_ENABLE_ONEDNN_OPTS=0 for the per-task side, 1.0e-2 apart in loss,
  cosine 0.886, as far as either is from float32 (cosine 0.81-0.88,
  test_the_meta_gradient_stays_near_float32s), so only that looser bound holds
  (results/grouped_convolution_fallback/README.md)."""
  del mixed_bfloat16
  _, _, batched_metrics, batched = _gradients("batched")
  _, _, per_task_metrics, per_task = _gradients("map_fn")
  onednn_bfloat16 = grouped_convolution.grouped_kernels_work(tf.bfloat16)
  loss_rtol, min_cosine = (2e-3, 0.99) if onednn_bfloat16 else (3e-2, 0.75)
  assert float(batched_metrics["loss"]) == pytest.approx(
    float(per_task_metrics["loss"]), rel=loss_rtol
  )
  assert _cosine(batched, per_task) > min_cosine


def test_the_shared_first_step_rounds_differently_within_bfloat16s_error(mixed_bfloat16):
  """shared_first_step is exact in float32 and float64 (tests/models/task_batched_test.py);
  in bfloat16 its ordinary convolutions round at other points than the grouped ones
  (both batch norms are TF's fused kernel, the shared one over the folded images):
  measured here loss 1.1e-3 apart, cosine 0.995, against 0.875
  between either precision's meta-gradient (below)."""
  del mixed_bfloat16
  _, _, grouped_metrics, grouped = _gradients("batched")
  _, _, shared_metrics, shared = _gradients("batched+shared")
  assert float(shared_metrics["loss"]) == pytest.approx(float(grouped_metrics["loss"]), rel=4e-3)
  assert _cosine(shared, grouped) > 0.98


@pytest.mark.parametrize("task_mapping", ["batched", "batched+shared"])
@pytest.mark.parametrize("inner_steps, min_cosine", [(0, 0.98), (1, 0.8)])
def test_the_meta_gradient_stays_near_float32s(inner_steps, min_cosine, task_mapping):
  # Measured on this model and batch: cosine 0.992 (plain gradient) and 0.875 (one
  # second-order inner step); bfloat16 keeps 8 bits of mantissa, so a deeper unroll
  # drifts further (results/precision/meta_gradient.json measured the paper's conv4).
  _, _, full_metrics, full = _gradients("batched", inner_steps)
  with _dtype_policy("mixed_bfloat16"):
    _, _, mixed_metrics, mixed = _gradients(task_mapping, inner_steps)
  assert _cosine(full, mixed) > min_cosine
  assert float(mixed_metrics["loss"]) == pytest.approx(float(full_metrics["loss"]), rel=0.02)


def _sequence_model(kind, policy, seed=0):
  with _dtype_policy(policy):
    return sequence_models.tiny_sequence_model(kind, encoder=True, seed=seed, image_shape=(8, 8, 1))


def _sequence_inputs(model, length=6):
  rng = np.random.default_rng(1)
  return tf.constant(rng.random((2, length, model.input_shape[-1])), tf.float32)


@pytest.mark.parametrize("kind", ["mann", "lstm"])
def test_the_sequence_models_compute_in_bfloat16_near_float32(kind):
  full = _sequence_model(kind, "float32")
  mixed = _sequence_model(kind, "mixed_bfloat16")
  mixed.set_weights(full.get_weights())
  assert {v.dtype for v in mixed.trainable_variables} == {"float32"}
  x = _sequence_inputs(full)
  expected, got = full(x).numpy(), mixed(x)
  assert got.dtype == tf.bfloat16
  # bfloat16 keeps 8 bits of mantissa (2^-8 = 0.4%); measured here: 0.49% (MANN),
  # 0.71% (LSTM) over the 6 steps.
  error = np.linalg.norm(got.numpy().astype(np.float32) - expected) / np.linalg.norm(expected)
  assert error < 0.02


def test_the_mann_keeps_its_memory_and_addressing_in_float32():
  cell = _sequence_model("mann", "mixed_bfloat16").get_layer("rnn").cell
  # Keras's RNN carries the state in the cell's compute dtype; the controller and the
  # heads compute in bfloat16.
  assert cell.compute_dtype == "float32"
  assert {cell.controller.compute_dtype, cell.key_layer.compute_dtype} == {"bfloat16"}
  state = [tf.zeros([2, size]) for size in cell.state_size]
  inputs = tf.ones([2, cell.controller.kernel.shape[0] - cell.num_reads * cell.word_size])
  outputs, new_state = cell(tf.cast(inputs, tf.bfloat16), state)
  assert outputs.dtype == tf.bfloat16
  assert {v.dtype for v in new_state} == {tf.float32}
  # Float32 addressing: the usage after one step holds what bfloat16 would round away.
  usage = new_state[3].numpy()
  assert np.any(usage != usage.astype(tf.bfloat16.as_numpy_dtype).astype(np.float32))
  # The config round trip keeps the policy of the sublayers.
  again = type(cell).from_config(cell.get_config())
  assert (again.compute_dtype, again.controller.compute_dtype) == ("float32", "bfloat16")


def _bfloat16_rounded(x):
  return np.asarray(x, np.float32).astype(tf.bfloat16.as_numpy_dtype).astype(np.float64)


def test_the_mann_controller_multiplies_in_bfloat16_and_keeps_its_cell_state_float32():
  cell = _sequence_model("mann", "mixed_bfloat16").get_layer("rnn").cell
  controller = cell.controller
  rng = np.random.default_rng(2)
  state = [tf.constant(rng.normal(size=(2, size)), tf.float32) for size in cell.state_size]
  reads_size = cell.num_reads * cell.word_size
  x = rng.normal(size=(2, controller.kernel.shape[0] - reads_size))
  _, (h, c, *_) = cell(tf.constant(x, tf.bfloat16), state)
  assert (h.dtype, c.dtype) == (tf.float32, tf.float32)
  # numpy: each matmul's operands and product in bfloat16, the gates in float64.
  rounded = _bfloat16_rounded
  x_and_reads = np.concatenate([rounded(x), rounded(state[5].numpy())], -1)
  z = (
    rounded(x_and_reads @ rounded(controller.kernel.numpy()))
    + rounded(rounded(state[0].numpy()) @ rounded(controller.recurrent_kernel.numpy()))
    + controller.bias.numpy()
  )
  i, f, g, o = np.split(z, 4, axis=-1)  # Keras LSTM gate order
  sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))
  want_c = sigmoid(f) * state[1].numpy() + sigmoid(i) * np.tanh(g)
  want_h = sigmoid(o) * np.tanh(want_c)
  # Measured: 5e-8 apart; float32 products instead of bfloat16's are 1e-3 off, Keras's
  # bfloat16 LSTMCell 4e-3 (a product could round the other way under another float32
  # summation order, but only within 1e-7 of a rounding boundary).
  np.testing.assert_allclose(c.numpy(), want_c, atol=1e-5)
  np.testing.assert_allclose(h.numpy(), want_h, atol=1e-5)
  # Float32 cell state: values that bfloat16 would have rounded away.
  c = c.numpy()
  assert np.mean(c != _bfloat16_rounded(c)) > 0.5


@pytest.mark.parametrize(
  "make_learner",
  [
    lambda m: meta.Episodic(m, num_classes=sequence_models.NUM_WAYS, num_instances=1),
    lambda m: meta.MAML(
      m,
      objective=meta.CLASSIFICATION,
      num_inner_steps=1,
      inner_lr=0.4,
      task_format=meta.SequenceFormat(num_classes=sequence_models.NUM_WAYS),
    ),
  ],
  ids=["episodic", "maml"],
)
def test_learners_over_a_mixed_mann_give_float32_meta_gradients_near_float32s(make_learner):
  tasks = sequence_models.image_tasks(
    num_tasks=2, num_shots=1, num_queries=1, image_shape=(8, 8, 1)
  )
  results = {}
  for policy in ("float32", "mixed_bfloat16"):
    model = _sequence_model("mann", policy)
    learner = make_learner(model)
    gradients, metrics = learner.compute_gradients(tasks, 0)
    assert {g.dtype for g in gradients} == {tf.float32}
    assert metrics["loss"].dtype == tf.float32
    keep = [not v.path.endswith("conv/bias") for v in model.trainable_variables]
    flat = np.concatenate([g.numpy().ravel() for g, k in zip(gradients, keep) if k])
    results[policy] = flat, float(metrics["loss"])
  (full, full_loss), (mixed, mixed_loss) = results["float32"], results["mixed_bfloat16"]
  # Measured: cosine 0.998 (episodic), 0.999 (MAML, one second-order inner step); the
  # losses agree to 1e-4 relative.
  assert mixed_loss == pytest.approx(full_loss, rel=2e-3)
  assert _cosine(full, mixed) > 0.99


def test_folded_bfloat16_batch_norm_is_float32s_rounded_and_differentiates_twice():
  """The task-batched batch norm feeds folded bfloat16 to TF's fused kernel, which
  normalises in float32 inside: its output is float32's rounded to bfloat16, bit for
  bit, and its first and second derivatives (TF computes the second in float32) are
  float32's within bfloat16's rounding."""
  layer = models.conv4(num_classes=5, num_filters=8).get_layer("block1_norm")
  num_tasks, channels = 3, 8
  rng = np.random.default_rng(0)
  gamma = tf.constant(rng.normal(1.0, 0.3, (num_tasks, channels)), tf.float32)
  beta = tf.constant(rng.normal(0.0, 0.3, (num_tasks, channels)), tf.float32)
  statistics = [tf.zeros([num_tasks, channels]), tf.ones([num_tasks, channels])]
  x = tf.cast(
    tf.constant(rng.normal(2.0, 3.0, (5, 4, 4, num_tasks * channels)), tf.float32), tf.bfloat16
  )
  weights = tf.constant(rng.normal(size=(5, 4, 4, num_tasks * channels)), tf.float32)

  def normalise(inputs):
    """Batch norm of `inputs`, its loss, the input gradient and that gradient's
    gradient with respect to gamma (what MAML's second order differentiates)."""
    with tf.GradientTape() as outer:
      outer.watch(gamma)
      with tf.GradientTape() as inner:
        inner.watch([inputs, gamma])
        y, _ = task_batched.TaskBatchedModel._batch_norm(
          layer, [gamma, beta], statistics, inputs, num_tasks, folded=True, training=True
        )
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
      input_gradient = inner.gradient(loss, inputs)
      penalty = tf.reduce_sum(tf.cast(input_gradient, tf.float32) ** 2)
    return y, input_gradient, outer.gradient(penalty, gamma)

  y, input_gradient, second = normalise(x)
  y32, input_gradient32, second32 = normalise(tf.cast(x, tf.float32))
  assert y.dtype == input_gradient.dtype == tf.bfloat16 and second.dtype == tf.float32
  np.testing.assert_array_equal(y.numpy(), tf.cast(y32, tf.bfloat16).numpy())
  relative = lambda got, want: float(tf.norm(tf.cast(got, tf.float32) - want) / tf.norm(want))
  # Measured: 2.3e-3 and 7.7e-4 (bfloat16 keeps 8 bits: 2^-8 = 3.9e-3 per rounding).
  assert relative(input_gradient, input_gradient32) < 1e-2
  assert relative(second, second32) < 1e-2
