"""Tests of mann/models/task_batched.py: T networks in one pass equal T separate passes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.data import episode as episode_lib
from mann.models import task_batched


def _stacked_weights(model, num_tasks, seed):
  """Each task's own weights: the model's, perturbed per task. [T, *shape] each."""
  rng = np.random.default_rng(seed)
  return [
    tf.constant(w.numpy()[None] + 0.1 * rng.normal(size=(num_tasks, *w.shape)), w.dtype)
    for w in model.trainable_weights
  ]


def _conv4_and_statistics(dtype, **options):
  """A conv4 on 16x16x2 images built in dtype, and random batch-norm running statistics."""
  keras.config.set_floatx(dtype)  # the Input's dtype
  keras.config.set_dtype_policy(dtype)  # the weights'
  try:
    model = models.conv4(num_classes=3, image_shape=(16, 16, 2), num_filters=5, **options)
  finally:
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
  statistics = [
    tf.constant(np.random.default_rng(1).uniform(0.5, 1.5, v.shape), v.dtype)
    for v in model.non_trainable_weights
  ]
  return model, statistics


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("downsample", ["stride", "max_pool"])
@pytest.mark.parametrize("training", [True, False])
def test_conv4_tasks_batched_equal_one_call_per_task(dtype, downsample, training):
  model, statistics = _conv4_and_statistics(dtype, downsample=downsample)
  weights = _stacked_weights(model, 4, seed=0)
  x = tf.constant(np.random.default_rng(2).normal(size=(4, 6, 16, 16, 2)), dtype)
  outputs, new_statistics = task_batched.TaskBatchedModel(model).stateless_call(
    weights, statistics, x, training=training
  )
  tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
  for t in range(4):
    want, want_statistics = model.stateless_call(
      [w[t] for w in weights], statistics, x[t], training=training
    )
    np.testing.assert_allclose(outputs[t], want, **tolerance)
    for got, expected in zip(new_statistics, want_statistics):
      np.testing.assert_allclose(got[t], expected, **tolerance)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_example_weights_give_the_moments_of_the_batch_with_examples_repeated(dtype):
  # Example b counted w_b times: outputs and statistics as if it were in the batch w_b
  # times (the reference repeats it).
  model, statistics = _conv4_and_statistics(dtype)
  weights = _stacked_weights(model, 4, seed=0)
  x = tf.constant(np.random.default_rng(2).normal(size=(4, 5, 16, 16, 2)), dtype)
  counts = [3, 1, 2, 1, 4]
  batched = task_batched.TaskBatchedModel(model)
  outputs, new_statistics = batched.stateless_call(
    weights, statistics, x, training=True, example_weights=counts
  )
  repeated, repeated_statistics = batched.stateless_call(
    weights, statistics, tf.repeat(x, counts, axis=1), training=True
  )
  first_copy = np.cumsum([0] + counts[:-1])
  tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(outputs, tf.gather(repeated, first_copy, axis=1), **tolerance)
  for got, expected in zip(new_statistics, repeated_statistics):
    np.testing.assert_allclose(got, expected, **tolerance)


def test_mlp_tasks_batched_equal_one_call_per_task():
  model = models.mlp(input_size=1, hidden_sizes=(40, 40), output_size=1)
  weights = _stacked_weights(model, 5, seed=3)
  x = tf.random.stateless_uniform([5, 10, 1], seed=[0, 4], minval=-5, maxval=5)
  outputs, _ = task_batched.TaskBatchedModel(model).stateless_call(weights, [], x, training=True)
  for t in range(5):
    want, _ = model.stateless_call([w[t] for w in weights], [], x[t], training=True)
    np.testing.assert_allclose(outputs[t], want, rtol=1e-5, atol=1e-6)


def test_models_without_a_batched_form_are_named_and_fall_back_to_map_fn():
  lstm = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4)])
  assert "LSTM" in task_batched.unsupported_reason(lstm)
  with pytest.raises(ValueError, match="cannot batch tasks"):
    task_batched.TaskBatchedModel(lstm)
  assert (
    meta.MAML(lstm, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.1).task_mapping
    == "map_fn"
  )
  conv4 = models.conv4(num_classes=2, image_shape=(8, 8, 1), num_filters=2)
  assert task_batched.unsupported_reason(conv4) is None
  assert (
    meta.MAML(conv4, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.1).task_mapping
    == "batched"
  )


@pytest.mark.parametrize(
  "layers,expected",
  [
    ([keras.layers.Conv2D(2, 3, activation="softmax")], "activation softmax"),
    ([keras.layers.Conv2D(2, 3), keras.layers.Activation("softmax")], "activation softmax"),
    (
      [keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization()],
      "use mann.models.BatchNormalization",
    ),
  ],
)
def test_layers_that_would_mix_tasks_or_change_gradients_have_no_batched_form(layers, expected):
  model = keras.Sequential(
    [keras.Input((6, 6, 2)), *layers, keras.layers.Flatten(), keras.layers.Dense(3)]
  )
  assert expected in task_batched.unsupported_reason(model)
  # Such a model still meta-learns, one task at a time.
  assert (
    meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.1).task_mapping
    == "map_fn"
  )


def test_a_softmax_over_one_task_s_outputs_is_batched_and_equals_the_per_task_pass():
  # After the dense layers the tasks lie on their own axis: a softmax there is per task.
  model = keras.Sequential(
    [
      keras.Input((6, 6, 2)),
      keras.layers.Conv2D(2, 3, activation="tanh"),
      keras.layers.Flatten(),
      keras.layers.Dense(3),
      keras.layers.Activation("softmax"),
    ]
  )
  assert task_batched.unsupported_reason(model) is None
  weights = _stacked_weights(model, 4, seed=5)
  x = tf.random.stateless_uniform([4, 2, 6, 6, 2], seed=[1, 2])
  outputs, _ = task_batched.TaskBatchedModel(model).stateless_call(weights, [], x, training=True)
  for t in range(4):
    want, _ = model.stateless_call([w[t] for w in weights], [], x[t], training=True)
    np.testing.assert_allclose(outputs[t], want, rtol=1e-5, atol=1e-6)


def _omniglot_like_tasks(num_tasks, ways, queries, seed):
  rng = np.random.default_rng(seed)
  return episode_lib.Episode(
    support_x=tf.constant(rng.uniform(size=(num_tasks, ways, 28, 28, 1)), tf.float32),
    support_y=tf.constant(np.tile(np.arange(ways), (num_tasks, 1)), tf.int32),
    query_x=tf.constant(rng.uniform(size=(num_tasks, ways * queries, 28, 28, 1)), tf.float32),
    query_y=tf.constant(np.tile(np.repeat(np.arange(ways), queries), (num_tasks, 1)), tf.int32),
  )


def _relative_error(got, want):
  got = np.concatenate([np.ravel(g) for g in got])
  want = np.concatenate([np.ravel(w) for w in want])
  return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.parametrize(
  "options",
  [
    dict(algorithm="maml"),
    dict(algorithm="maml", first_order=True),
    dict(algorithm="maml", batch_norm="per_step", num_inner_steps=2, dtype="float64"),
    dict(algorithm="reptile", num_inner_steps=2, dtype="float64"),
  ],
)
def test_batched_meta_gradients_equal_the_per_task_loop(options):
  """The MAML Omniglot setting (conv4, stride 2, 64 filters, 28x28, 5-way 1-shot, lr 0.4)
  with 6 tasks: the grouped-convolution step against a Python loop over tasks, to 1e-5
  in float32 with one inner step. Two float32 inner steps at lr 0.4 amplify the
  kernels' different summation orders to ~1e-4 (Reptile's w - w_adapted cancels most
  digits), so the two-step variants are checked in float64, to 1e-10."""
  options = dict(options)
  algorithm = options.pop("algorithm")
  dtype = options.pop("dtype", "float32")
  options.setdefault("num_inner_steps", 1)
  tasks = _omniglot_like_tasks(6, ways=5, queries=2, seed=0)
  tasks = episode_lib.Episode(*[tf.cast(p, dtype) if p.dtype.is_floating else p for p in tasks])
  learners = {}
  for mapping in ("batched", "map_fn", "loop"):
    keras.utils.set_random_seed(0)
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
      model = models.conv4(num_classes=5)
    finally:
      keras.config.set_floatx("float32")
      keras.config.set_dtype_policy("float32")
    kind = meta.MAML if algorithm == "maml" else meta.Reptile
    learners[mapping] = kind(
      model,
      objective=meta.CLASSIFICATION,
      inner_lr=0.4,
      task_mapping="map_fn" if mapping == "loop" else mapping,
      **options,
    )
  batched, batched_metrics = tf.function(learners["batched"].compute_gradients)(tasks)
  # The simple reference: one task at a time, in Python, averaged.
  loop_learner = learners.pop("loop")
  per_task = []
  for t in range(6):
    one = episode_lib.Episode(*[part[t : t + 1] for part in tasks])
    per_task.append(loop_learner.compute_gradients(one)[0])
  looped = [np.mean([g[i].numpy() for g in per_task], axis=0) for i in range(len(batched))]
  tolerance = 1e-5 if dtype == "float32" else 1e-10
  assert _relative_error([g.numpy() for g in batched], looped) < tolerance
  if loop_learner.step_statistics is not None:  # the task-averaged per-step statistics
    tf.function(learners["map_fn"].compute_gradients)(tasks)
    for got, want in zip(learners["batched"].step_statistics, learners["map_fn"].step_statistics):
      for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-10)
  steps = options["num_inner_steps"]
  scores = {
    m: tf.function(lambda b, m=m: learners[m].evaluate_tasks(b, steps))(tasks) for m in learners
  }
  np.testing.assert_allclose(
    scores["batched"]["loss"], scores["map_fn"]["loss"], rtol=tolerance * 10
  )
  assert 0 <= float(batched_metrics["accuracy"]) <= 1
