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


@pytest.mark.parametrize("downsample", ["stride", "max_pool"])
def test_shared_kernels_give_the_pass_and_each_task_s_kernel_gradient(downsample):
  """SharedKernel: the pass of T tasks with the one kernel per conv (ordinary
  convolutions over all tasks' images) equals each task's own Keras pass, and its
  sgd_step forms each task's kernel gradient of its own loss (float64)."""
  model, statistics = _conv4_and_statistics("float64", downsample=downsample)
  base = [w.value for w in model.trainable_weights]
  x = tf.constant(np.random.default_rng(2).normal(size=(3, 6, 16, 16, 2)), tf.float64)
  labels = tf.constant(np.random.default_rng(3).integers(0, 3, size=(3, 6)))
  batched = task_batched.TaskBatchedModel(model, shared_kernels=True)
  weights = batched.task_weights(base, 3)
  kernels = [i for i, w in enumerate(weights) if isinstance(w, task_batched.SharedKernel)]
  assert len(kernels) == 4  # one per conv layer; every other weight a [T, ...] tensor
  outputs, _ = batched.stateless_call(weights, statistics, x, training=True)
  loss_of = lambda logits, y: tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
  )
  for t in range(3):
    want, _ = model.stateless_call(base, statistics, x[t], training=True)
    np.testing.assert_allclose(outputs[t], want, rtol=1e-12, atol=1e-12)
  with tf.GradientTape() as tape:
    recorded = [w.recording() if i in kernels else w for i, w in enumerate(weights)]
    outputs, _ = batched.stateless_call(recorded, statistics, x, training=True)
    loss = sum(loss_of(outputs[t], labels[t]) for t in range(3))
  products = [z for i in kernels for _, z in recorded[i].uses]
  output_gradients = tape.gradient(loss, products)
  for position, i in enumerate(kernels):
    stepped = recorded[i].sgd_step(1.0, [output_gradients[position]], first_order=False)
    for t in range(3):
      with tf.GradientTape() as per_task:
        kernel = tf.constant(base[i])
        per_task.watch(kernel)
        own = list(base)
        own[i] = kernel
        logits, _ = model.stateless_call(own, statistics, x[t], training=True)
        task_loss = loss_of(logits, labels[t])
      want = base[i] - per_task.gradient(task_loss, kernel)
      np.testing.assert_allclose(stepped[t], want, rtol=1e-10, atol=1e-12)


_SHARED_FIRST_STEP_CONFIGS = [
  dict(num_inner_steps=1),
  dict(num_inner_steps=1, first_order=True),
  dict(num_inner_steps=3),
  dict(num_inner_steps=2, adapted="head"),
  dict(num_inner_steps=2, learner="reptile"),
  dict(num_inner_steps=2, learn_inner_lrs=True, multi_step_loss=True, batch_norm="per_step"),
]


@pytest.mark.parametrize(
  "options, downsample",
  [(options, "stride") for options in _SHARED_FIRST_STEP_CONFIGS]
  + [(_SHARED_FIRST_STEP_CONFIGS[0], "max_pool")],
  ids=str,
)
def test_shared_first_step_gives_the_same_meta_gradients_and_evaluation(options, downsample):
  """shared_first_step against the grouped first step, float64: MAML (second and first
  order, 3 steps, ANIL, MAML++) and Reptile give the same meta-gradients to 1e-10 and
  the same 3-step evaluation; MAML then has no task_update_cosine, Reptile keeps it."""
  options = dict(options)
  kind = meta.Reptile if options.pop("learner", "maml") == "reptile" else meta.MAML
  adapted = options.pop("adapted", None)
  rng = np.random.default_rng(1)
  tasks = episode_lib.Episode(
    support_x=tf.constant(rng.uniform(size=(3, 5, 16, 16, 1))),
    support_y=tf.constant(np.tile(np.arange(5), (3, 1)), tf.int32),
    query_x=tf.constant(rng.uniform(size=(3, 10, 16, 16, 1))),
    query_y=tf.constant(np.tile(np.repeat(np.arange(5), 2), (3, 1)), tf.int32),
  )
  results = {}
  for shared in (False, True):
    keras.utils.set_random_seed(0)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
      model = models.conv4(
        num_classes=5, image_shape=(16, 16, 1), num_filters=4, downsample=downsample
      )
    finally:
      keras.config.set_floatx("float32")
      keras.config.set_dtype_policy("float32")
    learner = kind(
      model,
      objective=meta.CLASSIFICATION,
      inner_lr=0.4,
      task_mapping="batched",
      shared_first_step=shared,
      adapted_weights=models.adapted_weights(model, adapted) if adapted else None,
      **options,
    )
    gradients, metrics = tf.function(learner.compute_gradients, autograph=False)(tasks)
    scores = tf.function(lambda b, learner=learner: learner.evaluate_tasks(b, 3))(tasks)
    results[shared] = ([g.numpy() for g in gradients], metrics, scores)
  (want, want_metrics, want_scores), (got, got_metrics, got_scores) = results[False], results[True]
  keep = [not v.path.endswith("conv/bias") for v in model.trainable_variables]
  assert (
    _relative_error([g for g, k in zip(got, keep) if k], [w for w, k in zip(want, keep) if k])
    < 1e-10
  )
  np.testing.assert_allclose(got_scores["loss"], want_scores["loss"], rtol=1e-10)
  assert float(got_metrics["loss"]) == pytest.approx(float(want_metrics["loss"]), rel=1e-12)
  assert meta.gradient_learner.TASK_UPDATE_COSINE in want_metrics
  assert (meta.gradient_learner.TASK_UPDATE_COSINE in got_metrics) == (kind is meta.Reptile)


def test_the_evaluation_after_a_shared_first_step_is_one_loop():
  """The steps after the shared first are the tf.while_loop of unshared kernels."""
  keras.utils.set_random_seed(0)
  learner = meta.MAML(
    models.conv4(num_classes=5, num_filters=4),
    objective=meta.CLASSIFICATION,
    num_inner_steps=1,
    inner_lr=0.4,
    shared_first_step=True,
  )
  tasks = _omniglot_like_tasks(2, ways=5, queries=1, seed=0)
  graph = tf.function(lambda b: learner.evaluate_tasks(b, 4)).get_concrete_function(tasks).graph
  assert "While" in {op.type for op in graph.get_operations()}


def test_shared_first_step_refuses_what_it_cannot_share():
  keras.utils.set_random_seed(0)
  common = dict(objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4)
  with pytest.raises(ValueError, match="shared_first_step shares convolutions"):
    meta.MAML(models.conv4(num_classes=5), task_mapping="map_fn", shared_first_step=True, **common)
  with pytest.raises(ValueError, match="shared_first_step shares convolutions"):
    meta.MAML(models.mlp(hidden_sizes=(4,)), shared_first_step=True, **common)
  with pytest.raises(ValueError, match="do not combine"):
    meta.MAML(
      models.conv4(num_classes=5), checkpoint_inner_steps=True, shared_first_step=True, **common
    )


def test_a_second_order_step_has_no_bias_gradient_kernel_to_fuse():
  """oneDNN's graph pass fuses a filter gradient with a BiasAddGrad of the same output
  gradient without checking that neither depends on the other; in a second-order MAML
  step one does (the inner bias gradient feeds the adapted weights, which feed the
  outer filter gradient of the same inner output gradient), and the fused graph had a
  cycle ("N nodes in a cycle") for some graph orders. The batched conv's bias gradient
  is a matmul (task_batched._add_bias), so the traced step holds no BiasAddGrad to
  fuse, and it runs."""
  keras.utils.set_random_seed(0)
  learner = meta.MAML(
    models.conv4(num_classes=5),
    objective=meta.CLASSIFICATION,
    num_inner_steps=1,
    inner_lr=0.4,
    task_mapping="batched",
  )
  step = tf.function(learner.compute_gradients)
  tasks = _omniglot_like_tasks(2, ways=5, queries=1, seed=1)
  graph = step.get_concrete_function(tasks).graph
  op_types = {op.type for op in graph.get_operations()}
  assert "Conv2DBackpropFilter" in op_types and "FusedBatchNormGradV3" in op_types
  assert "BiasAddGrad" not in op_types
  gradients, _ = step(tasks)
  assert all(np.isfinite(g.numpy()).all() for g in gradients)
