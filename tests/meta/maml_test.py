"""Tests of mann/meta: MAML's meta-gradients against finite differences, and its contracts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.data import episode as episode_lib
from tests import gradient_check


def _tiny_model(seed, batch_norm=True):
  """float64 Dense(2->4) [BatchNorm] tanh Dense(4->3): smooth, so finite differences hold."""
  keras.utils.set_random_seed(seed)
  layers = [keras.Input((2,), dtype="float64"), keras.layers.Dense(4, dtype="float64")]
  if batch_norm:
    layers.append(models.BatchNormalization(dtype="float64"))
  layers += [
    keras.layers.Activation("tanh", dtype="float64"),
    keras.layers.Dense(3, dtype="float64"),
  ]
  return keras.Sequential(layers)


def _tasks(num_tasks=3, num_support=6, num_query=5, seed=0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  return episode_lib.Episode(
    support_x=tf.constant(rng.normal(size=(num_tasks, num_support, 2)), dtype),
    support_y=tf.constant(rng.integers(0, 3, (num_tasks, num_support)), tf.int32),
    query_x=tf.constant(rng.normal(size=(num_tasks, num_query, 2)), dtype),
    query_y=tf.constant(rng.integers(0, 3, (num_tasks, num_query)), tf.int32),
  )


@pytest.mark.parametrize("task_mapping", ["batched", "map_fn"])
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize(
  "options",
  [
    dict(num_inner_steps=1),
    dict(num_inner_steps=2, learn_inner_lrs=True, multi_step_loss=True, multi_step_anneal_steps=4),
    dict(num_inner_steps=3, learn_inner_lrs=True, checkpoint_inner_steps=True),
  ],
)
def test_second_order_meta_gradients_equal_finite_differences(jit_compile, options, task_mapping):
  if options.get("checkpoint_inner_steps") and task_mapping != "batched":
    with pytest.raises(ValueError, match="needs task_mapping='batched'"):
      meta.MAML(
        _tiny_model(0),
        objective=meta.CLASSIFICATION,
        inner_lr=0.3,
        task_mapping=task_mapping,
        **options,
      )
    return
  learner = meta.MAML(
    _tiny_model(0),
    objective=meta.CLASSIFICATION,
    inner_lr=0.3,
    task_mapping=task_mapping,
    **options,
  )
  tasks = _tasks()
  step = tf.constant(1, tf.int64)  # mid-annealing: every step's loss counts
  gradients = tf.function(learner.compute_gradients, jit_compile=jit_compile)
  analytic, _ = gradients(tasks, step)
  loss = tf.function(lambda: learner.meta_loss(tasks, step)[0])
  numeric = gradient_check.finite_difference_gradients(loss, learner.trainable_variables)
  gradient_check.assert_gradients_close([a.numpy() for a in analytic], numeric, rtol=1e-6)


def test_first_order_gradient_is_the_query_gradient_at_adapted_weights():
  model = _tiny_model(1)
  learner = meta.MAML(
    model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3, first_order=True
  )
  tasks = _tasks(seed=1)
  fomaml, _ = learner.compute_gradients(tasks)
  # By hand: one SGD step per task, then the plain query gradient there, task-averaged.
  non_trainable = [v.value for v in model.non_trainable_variables]
  expected = [np.zeros(v.shape) for v in model.trainable_variables]
  for t in range(3):
    weights = [tf.identity(v.value) for v in model.trainable_variables]
    with tf.GradientTape() as tape:
      tape.watch(weights)
      logits, _ = model.stateless_call(weights, non_trainable, tasks.support_x[t], training=True)
      loss = meta.CLASSIFICATION.loss(tasks.support_y[t], logits)
    adapted = [tf.identity(w - 0.3 * g) for w, g in zip(weights, tape.gradient(loss, weights))]
    with tf.GradientTape() as tape:
      tape.watch(adapted)
      logits, _ = model.stateless_call(adapted, non_trainable, tasks.query_x[t], training=True)
      loss = meta.CLASSIFICATION.loss(tasks.query_y[t], logits)
    for e, g in zip(expected, tape.gradient(loss, adapted)):
      e += g.numpy() / 3
  for got, want in zip(fomaml, expected):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_second_and_first_order_differ_on_a_nonlinear_model():
  tasks = _tasks(seed=2)
  second, _ = meta.MAML(
    _tiny_model(2), objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3
  ).compute_gradients(tasks)
  first, _ = meta.MAML(
    _tiny_model(2), objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3, first_order=True
  ).compute_gradients(tasks)
  difference = max(np.abs(a - b).max() for a, b in zip(second, first))
  assert difference > 1e-3


def test_zero_inner_steps_is_the_plain_query_loss():
  model = _tiny_model(3)
  tasks = _tasks(seed=3)
  loss, _ = meta.MAML(
    model, objective=meta.CLASSIFICATION, num_inner_steps=0, inner_lr=0.3
  ).meta_loss(tasks)
  per_task = [
    meta.CLASSIFICATION.loss(tasks.query_y[t], model(tasks.query_x[t], training=True))
    for t in range(3)
  ]
  np.testing.assert_allclose(loss, np.mean(per_task), rtol=1e-12)


def test_support_loss_falls_after_adaptation():
  model = _tiny_model(4)
  tasks = _tasks(seed=4)
  weights = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  for t in range(3):
    trajectory = meta.sgd_adapt(
      model,
      weights,
      non_trainable,
      tasks.support_x[t],
      tasks.support_y[t],
      objective=meta.CLASSIFICATION,
      learning_rates=[[0.1] * len(weights)] * 3,
      first_order=False,
    )
    losses = [
      float(
        meta.CLASSIFICATION.loss(
          tasks.support_y[t],
          meta.forward(model, w, non_trainable, tasks.support_x[t], training=True),
        )
      )
      for w in trajectory
    ]
    assert losses[0] > losses[1] > losses[2] > losses[3]


def test_every_conv4_variable_gets_a_meta_gradient_and_adaptation_leaves_variables_alone():
  model = models.conv4(num_classes=3, image_shape=(8, 8, 1), num_filters=4)
  learner = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4)
  rng = np.random.default_rng(0)
  tasks = episode_lib.Episode(
    support_x=tf.constant(rng.uniform(size=(2, 3, 8, 8, 1)), tf.float32),
    support_y=tf.constant([[0, 1, 2]] * 2, tf.int32),
    query_x=tf.constant(rng.uniform(size=(2, 6, 8, 8, 1)), tf.float32),
    query_y=tf.constant([[0, 1, 2, 0, 1, 2]] * 2, tf.int32),
  )
  before = [v.numpy().copy() for v in model.variables]
  gradients, _ = learner.compute_gradients(tasks)
  assert len(gradients) == len(model.trainable_variables) == 4 * 4 + 2
  for variable, gradient in zip(model.trainable_variables, gradients):
    assert np.abs(gradient.numpy()).max() > 0, variable.path
  learner.evaluate_tasks(tasks, num_steps=3)
  for variable, value in zip(model.variables, before):
    np.testing.assert_array_equal(variable.numpy(), value)


def test_evaluation_scores_every_step_and_starts_at_the_initialisation():
  model = _tiny_model(5)
  tasks = _tasks(seed=5)
  learner = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3)
  scores = learner.evaluate_tasks(tasks, num_steps=2)
  assert scores["loss"].shape == (3, 3) and scores["accuracy"].shape == (3, 3)
  for t in range(3):
    logits = model(tasks.query_x[t], training=True)
    np.testing.assert_allclose(
      scores["loss"][t, 0], meta.CLASSIFICATION.loss(tasks.query_y[t], logits), rtol=1e-12
    )
    np.testing.assert_allclose(
      scores["accuracy"][t, 0], meta.CLASSIFICATION.metric(tasks.query_y[t], logits), rtol=1e-12
    )


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_every_task_mapping_gives_the_same_gradients(algorithm):
  tasks = _tasks(seed=6)
  results = {}
  for mapping in ("map_fn", "vectorized_map", "batched"):
    model = _tiny_model(6)
    if algorithm == "maml":
      learner = meta.MAML(
        model, objective=meta.CLASSIFICATION, num_inner_steps=2, inner_lr=0.3, task_mapping=mapping
      )
    else:
      learner = meta.Reptile(
        model, objective=meta.CLASSIFICATION, num_inner_steps=2, inner_lr=0.3, task_mapping=mapping
      )
    gradients, _ = tf.function(learner.compute_gradients)(tasks)
    results[mapping] = [g.numpy() for g in gradients]
  for mapping in ("vectorized_map", "batched"):
    for mapped, other in zip(results["map_fn"], results[mapping]):
      np.testing.assert_allclose(other, mapped, rtol=1e-10, atol=1e-12)


def _has_loop(function, *args):
  graph = function.get_concrete_function(*args).graph
  return bool({"While", "StatelessWhile"} & {op.type for op in graph.get_operations()})


@pytest.mark.parametrize(
  "algorithm, options",
  [
    ("maml", dict()),
    ("maml", dict(learn_inner_lrs=True, multi_step_loss=True, multi_step_anneal_steps=4)),
    ("reptile", dict()),
  ],
)
def test_inner_steps_as_a_loop_or_unrolled_give_the_same_gradients_and_scores(algorithm, options):
  """inner_step_tracing: the tf.while_loop and the unrolled steps agree on meta-gradients
  (second order) and on meta-test scores; auto loops only where nothing differentiates
  through the steps."""
  tasks = _tasks(seed=8)
  step = tf.constant(1, tf.int64)  # mid-annealing: every step's loss counts
  results = {}
  for tracing in ("loop", "unrolled", "auto"):
    cls = meta.MAML if algorithm == "maml" else meta.Reptile
    learner = cls(
      _tiny_model(8),
      objective=meta.CLASSIFICATION,
      num_inner_steps=3,
      inner_lr=0.3,
      inner_step_tracing=tracing,
      **options,
    )
    gradients = tf.function(learner.compute_gradients)
    evaluate = tf.function(lambda t, learner=learner: learner.evaluate_tasks(t, 4))
    results[tracing] = [g.numpy() for g in gradients(tasks, step)[0]] + [
      v.numpy() for v in evaluate(tasks).values()
    ]
    loops = (_has_loop(gradients, tasks, step), _has_loop(evaluate, tasks))
    expected = {"loop": (True, True), "unrolled": (False, False)}.get(
      tracing, (algorithm == "reptile", True)
    )
    assert loops == expected, (tracing, loops)
  for tracing in ("loop", "auto"):
    for a, b in zip(results[tracing], results["unrolled"]):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
  with pytest.raises(ValueError, match="inner_step_tracing must be one of"):
    meta.MAML(
      _tiny_model(8),
      objective=meta.CLASSIFICATION,
      num_inner_steps=3,
      inner_lr=0.3,
      inner_step_tracing="python",
    )


def test_transfer_gradient_is_the_pooled_plain_gradient():
  model = _tiny_model(7, batch_norm=False)
  tasks = _tasks(seed=7)
  gradients, _ = meta.Transfer(
    model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.1
  ).compute_gradients(tasks)
  x = np.concatenate([tasks.support_x.numpy(), tasks.query_x.numpy()], axis=1).reshape(-1, 2)
  y = np.concatenate([tasks.support_y.numpy(), tasks.query_y.numpy()], axis=1).reshape(-1)
  with tf.GradientTape() as tape:
    loss = meta.CLASSIFICATION.loss(y, model(x))
  for got, want in zip(gradients, tape.gradient(loss, model.trainable_variables)):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_per_step_statistics_follow_each_pass_and_make_meta_test_per_example():
  # One task, one inner step, momentum 0.5: statistics of step 0 move halfway to the
  # moments of the support batch's pre-norm activations under the initial weights,
  # those of step 1 to the query batch's under the adapted weights (computed by hand).
  keras.utils.set_random_seed(8)
  model = keras.Sequential(
    [
      keras.Input((2,), dtype="float64"),
      keras.layers.Dense(4, dtype="float64", name="dense"),
      models.BatchNormalization(momentum=0.5, dtype="float64"),
      keras.layers.Activation("tanh", dtype="float64"),
      keras.layers.Dense(3, dtype="float64"),
    ]
  )
  learner = meta.MAML(
    model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3, batch_norm="per_step"
  )
  tasks = _tasks(num_tasks=1, seed=8)
  weights = [tf.identity(v.value) for v in model.trainable_variables]
  with tf.GradientTape() as tape:
    tape.watch(weights)
    logits, _ = model.stateless_call(
      weights, [v.value for v in model.non_trainable_variables], tasks.support_x[0], training=True
    )
    loss = meta.CLASSIFICATION.loss(tasks.support_y[0], logits)
  adapted = [w - 0.3 * g for w, g in zip(weights, tape.gradient(loss, weights))]
  learner.compute_gradients(tasks)
  for step, (kernel, bias, x) in enumerate(
    [(weights[0], weights[1], tasks.support_x[0]), (adapted[0], adapted[1], tasks.query_x[0])]
  ):
    hidden = x.numpy() @ kernel.numpy() + bias.numpy()
    mean, variance = (v.numpy() for v in learner.step_statistics[step])
    np.testing.assert_allclose(mean, 0.5 * 0.0 + 0.5 * hidden.mean(0), rtol=1e-10)
    np.testing.assert_allclose(variance, 0.5 * 1.0 + 0.5 * hidden.var(0), rtol=1e-10)
  # Meta-test with running statistics: a query's score does not depend on the others.
  whole = learner.evaluate_tasks(tasks, num_steps=1)
  half = learner.evaluate_tasks(
    tasks._replace(query_x=tasks.query_x[:, :1], query_y=tasks.query_y[:, :1]), num_steps=1
  )
  first_alone = meta.CLASSIFICATION.loss(
    tasks.query_y[0, :1],
    model.stateless_call(
      [v.value for v in model.trainable_variables],
      [tf.convert_to_tensor(v) for v in learner.step_statistics[0]],
      tasks.query_x[0, :1],
      training=False,
    )[0],
  )
  np.testing.assert_allclose(half["loss"][0, 0], first_alone, rtol=1e-12)
  assert whole["loss"].shape == (1, 2)


def test_transductive_meta_test_normalises_queries_together():
  model = _tiny_model(9)
  tasks = _tasks(num_tasks=1, seed=9)
  learner = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.3)
  whole = learner.evaluate_tasks(tasks, num_steps=0)
  logits = model(tasks.query_x[0], training=True)  # batch statistics of all queries
  np.testing.assert_allclose(
    whole["loss"][0, 0], meta.CLASSIFICATION.loss(tasks.query_y[0], logits), rtol=1e-12
  )
  alone = model(tasks.query_x[0, :2], training=True)
  assert not np.allclose(logits[:2], alone)  # so one query's logits depend on the rest


def test_image_transfer_pretrains_its_own_head_and_fine_tunes_from_a_zero_head():
  model = models.conv4(num_classes=3, image_shape=(8, 8, 1), num_filters=4)
  learner = meta.Transfer(
    model, objective=meta.CLASSIFICATION, num_inner_steps=0, inner_lr=0.1, num_pretrain_classes=7
  )
  head = model.get_layer("logits")
  trained = {id(v) for v in learner.trainable_variables}
  assert id(head.kernel) not in trained and id(head.bias) not in trained
  assert learner.pretrain_head[0].shape == (4, 7)  # 8 -> 4 -> 2 -> 1 -> 1: 1x1x4 features
  rng = np.random.default_rng(0)
  tasks = episode_lib.Episode(
    support_x=tf.constant(rng.uniform(size=(2, 3, 8, 8, 1)), tf.float32),
    support_y=tf.constant([[6, 0, 4], [1, 2, 5]], tf.int32),  # training-class labels
    query_x=tf.constant(rng.uniform(size=(2, 3, 8, 8, 1)), tf.float32),
    query_y=tf.constant([[6, 0, 4], [1, 2, 5]], tf.int32),
  )
  gradients, metrics = learner.compute_gradients(tasks)
  x = tf.reshape(tf.concat([tasks.support_x, tasks.query_x], 1), [-1, 8, 8, 1])
  y = tf.reshape(tf.concat([tasks.support_y, tasks.query_y], 1), [-1])
  with tf.GradientTape() as tape:
    features = learner.features(x, training=True)
    logits = features @ learner.pretrain_head[0] + learner.pretrain_head[1]
    loss = meta.CLASSIFICATION.loss(y, logits)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
  for got, want in zip(gradients, tape.gradient(loss, learner.trainable_variables)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # Meta-test starts from a zero N-way head: uniform predictions, loss log(3).
  episode = tasks._replace(support_y=tasks.support_y % 3, query_y=tasks.query_y % 3)
  scores = learner.evaluate_tasks(episode, num_steps=2)
  np.testing.assert_allclose(scores["loss"][:, 0], np.log(3.0), rtol=1e-6)
  assert np.all(scores["loss"][:, 2] < scores["loss"][:, 0] + 1e-6)


@pytest.mark.parametrize("task_mapping", ["batched", "map_fn"])
def test_the_joint_objective_adds_the_weighted_loss_before_adaptation(task_mapping):
  """Its meta-loss is MAML's plus lambda times the zero-step query loss (each from a
  learner of its own), and its meta-gradient equals finite differences of that loss."""
  tasks = _tasks(seed=4)
  joint = meta.MAML(
    _tiny_model(4),
    objective=meta.CLASSIFICATION,
    num_inner_steps=2,
    inner_lr=0.3,
    task_mapping=task_mapping,
    pre_adaptation_loss_weight=0.7,
  )
  model = joint.model
  plain = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=2, inner_lr=0.3)
  before = meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=0, inner_lr=0.3)
  loss, metrics = joint.meta_loss(tasks)
  want = plain.meta_loss(tasks)[0] + 0.7 * before.meta_loss(tasks)[0]
  np.testing.assert_allclose(loss, want, rtol=1e-12)
  np.testing.assert_allclose(metrics["loss_before_adaptation"], before.meta_loss(tasks)[0])
  np.testing.assert_allclose(metrics["loss"], plain.meta_loss(tasks)[1]["loss"], rtol=1e-12)
  assert 0.0 <= float(metrics["accuracy_before_adaptation"]) <= 1.0
  analytic, step_metrics = tf.function(joint.compute_gradients)(tasks, 0)
  assert "accuracy_before_adaptation" in step_metrics
  numeric = gradient_check.finite_difference_gradients(
    tf.function(lambda: joint.meta_loss(tasks)[0]), joint.trainable_variables
  )
  gradient_check.assert_gradients_close([a.numpy() for a in analytic], numeric, rtol=1e-6)
  with pytest.raises(ValueError, match="pre_adaptation_loss_weight"):
    meta.MAML(
      model,
      objective=meta.CLASSIFICATION,
      num_inner_steps=1,
      inner_lr=0.3,
      pre_adaptation_loss_weight=-1.0,
    )
