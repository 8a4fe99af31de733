"""Every learner through the same checks (Sonnet's conformance tests, for meta-learners).

One row of LEARNERS per learner configuration; each check runs on every row, so a new
learner gets every guarantee by adding a row:
  - it keeps the MetaLearner contract;
  - eager, tf.function and jit_compile=True give the same gradients;
  - a checkpoint round trip gives the same evaluation;
  - compute_gradients leaves the trainable variables unchanged;
  - every trainable variable gets a non-zero gradient;
  - the same seed gives the same numbers;
  - run a task at a time (mann.meta.task_chunks), the meta-gradients are the mean of
    each task's own, or the learner says why it cannot be split.
"""

import dataclasses
import os
from typing import Any, Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from mann.data import episode as episode_lib
from tests import sequence_models

NUM_WAYS = sequence_models.NUM_WAYS


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  make: Callable[[int], object]  # seed -> learner
  tasks: Callable[[], episode_lib.Episode]
  # Non-trainable variables that compute_gradients moves on purpose (running statistics).
  moves_statistics: bool = False
  # Variables whose gradient is zero by construction, with the reason.
  zero_gradients: tuple[str, str] = ("", "")


def _conv4(seed):
  keras.utils.set_random_seed(seed)
  return models.conv4(num_classes=NUM_WAYS, image_shape=(8, 8, 1), num_filters=2)


def _image_tasks():
  return sequence_models.image_tasks(num_tasks=2, num_shots=2, num_queries=2, image_shape=(8, 8, 1))


def _sinusoid_tasks():
  rng = np.random.default_rng(0)
  return episode_lib.Episode(
    *(tf.constant(rng.normal(size=(2, 5, 1)), tf.float32) for _ in range(4))
  )


def _sequence(kind, encoder=True):
  image_shape = (8, 8, 1) if encoder else (4, 4, 1)
  return lambda seed: sequence_models.tiny_sequence_model(
    kind, encoder=encoder, seed=seed, image_shape=image_shape
  )


def _sequence_tasks(encoder=True):
  image_shape = (8, 8, 1) if encoder else (4, 4, 1)
  return lambda: sequence_models.image_tasks(
    num_tasks=2, num_shots=1, num_queries=1, image_shape=image_shape
  )


def _format(inner_loss="support_replay"):
  return meta.SequenceFormat(num_classes=NUM_WAYS, inner_loss=inner_loss)


_GRADIENT: dict[str, Any] = dict(objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4)

LEARNERS = [
  Row("maml_conv4", lambda s: meta.MAML(_conv4(s), **_GRADIENT), _image_tasks),
  Row("fomaml_conv4", lambda s: meta.MAML(_conv4(s), first_order=True, **_GRADIENT), _image_tasks),
  Row(
    "maml_conv4_shared_first_step",
    lambda s: meta.MAML(_conv4(s), shared_first_step=True, **_GRADIENT),
    _image_tasks,
  ),
  Row(
    "maml++_conv4",
    lambda s: meta.MAML(
      _conv4(s), learn_inner_lrs=True, multi_step_loss=True, batch_norm="per_step", **_GRADIENT
    ),
    _image_tasks,
    moves_statistics=True,
  ),
  Row(
    "anil_conv4",
    lambda s: meta.MAML(
      (m := _conv4(s)), adapted_weights=models.adapted_weights(m, "head"), **_GRADIENT
    ),
    _image_tasks,
  ),
  Row("reptile_conv4", lambda s: meta.Reptile(_conv4(s), **_GRADIENT), _image_tasks),
  # No conv4 row with inner Adam: a conv bias before batch norm has a gradient of 0 up to
  # round-off, which Adam's g / sqrt(v) turns into steps of either sign (tests/meta/
  # reptile_test.py checks the batched form on an MLP).
  Row(
    "transfer_conv4",
    lambda s: meta.Transfer(_conv4(s), num_pretrain_classes=7, **_GRADIENT),
    _image_tasks,
    moves_statistics=True,
  ),  # pretraining is a plain Keras call in training mode
  Row(
    "transfer_mlp",
    lambda s: meta.Transfer(
      (keras.utils.set_random_seed(s), models.mlp(hidden_sizes=(4,)))[1],
      objective=meta.REGRESSION,
      num_inner_steps=1,
      inner_lr=0.01,
    ),
    _sinusoid_tasks,
  ),
  Row(
    "episodic_mann",
    lambda s: meta.Episodic(_sequence("mann")(s), num_classes=NUM_WAYS, num_instances=1),
    _sequence_tasks(),
    moves_statistics=True,
    zero_gradients=(
      "_conv/bias",
      "a bias before batch norm in training mode is "
      "subtracted with the batch mean: its gradient is 0 up to round-off",
    ),
  ),
  Row(
    "episodic_lstm",
    lambda s: meta.Episodic(_sequence("lstm", False)(s), num_classes=NUM_WAYS, num_instances=1),
    _sequence_tasks(False),
  ),
  # The encoder is in the episodic and FOMAML rows; the second-order MAML-over-MANN
  # graph with it takes a minute to compile with XLA (the FD tests of
  # sequence_maml_test.py cover it).
  Row(
    "maml_mann",
    lambda s: meta.MAML(_sequence("mann", False)(s), task_format=_format(), **_GRADIENT),
    _sequence_tasks(False),
  ),
  Row(
    "maml_mann_head",
    lambda s: meta.MAML(
      (m := _sequence("mann", False)(s)),
      adapted_weights=models.adapted_weights(m, "head"),
      task_format=_format("support_sequence"),
      **_GRADIENT,
    ),
    _sequence_tasks(False),
  ),
  Row(
    "maml_mann_joint",
    lambda s: meta.MAML(
      _sequence("mann", False)(s),
      pre_adaptation_loss_weight=0.5,
      task_format=_format("support_replay"),
      **_GRADIENT,
    ),
    _sequence_tasks(False),
  ),
  Row(
    "fomaml_lstm",
    lambda s: meta.MAML(_sequence("lstm")(s), first_order=True, task_format=_format(), **_GRADIENT),
    _sequence_tasks(),
  ),
  Row(
    "reptile_mann",
    lambda s: meta.Reptile(_sequence("mann", False)(s), task_format=_format(), **_GRADIENT),
    _sequence_tasks(False),
  ),
  Row(
    "reptile_adam_mann",
    lambda s: meta.Reptile(
      _sequence("mann", False)(s),
      task_format=_format(),
      inner_optimizer="adam",
      **{**_GRADIENT, "num_inner_steps": 2, "inner_lr": 0.01},
    ),
    _sequence_tasks(False),
  ),
]


@pytest.fixture(params=LEARNERS, ids=[row.name for row in LEARNERS])
def row(request):
  return request.param


def _numpy(values):
  return [np.asarray(v) for v in values]


def _snapshot(variables):
  return [v.numpy().copy() for v in variables]


def _one_task(tasks, i):
  return tf.nest.map_structure(lambda x: x[i : i + 1], tasks)


def test_a_task_at_a_time_gives_the_mean_of_each_tasks_gradients(row):
  learner = row.make(0)
  tasks = row.tasks()
  num_tasks = tf.nest.flatten(tasks)[0].shape[0]
  reason = meta.task_chunks.unsupported_reason(learner)
  if reason is not None:
    with pytest.raises(ValueError, match="cannot split this learner's meta-batches"):
      meta.task_chunks.check_tasks_per_chunk(learner, num_tasks, 1)
    return
  # Independent: each task alone through the plain compute_gradients, averaged here.
  alone = [learner.compute_gradients(_one_task(tasks, i), 0) for i in range(num_tasks)]
  expected = [np.mean([_numpy(g)[k] for g, _ in alone], axis=0) for k in range(len(alone[0][0]))]
  chunked = tf.function(
    lambda tasks: meta.task_chunks.compute_gradients(learner, tasks, 0, tasks_per_chunk=1)
  )
  gradients, metrics = chunked(tasks)
  # What makes splitting sound: the whole meta-batch's gradient is that same mean.
  whole, _ = learner.compute_gradients(tasks, 0)
  for want, got, whole_gradient in zip(expected, _numpy(gradients), _numpy(whole)):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(whole_gradient, want, rtol=2e-4, atol=2e-6)
  names = ["loss", learner.objective.metric_name]
  for name in names:
    want = np.mean([float(m[name]) for _, m in alone])
    assert float(metrics[name]) == pytest.approx(want, rel=1e-5), name


def test_learner_keeps_the_contract(row):
  learner = row.make(0)
  assert isinstance(learner, meta.MetaLearner)
  assert learner.objective.metric_name in ("accuracy", "mse")
  assert all(isinstance(v, (tf.Variable, keras.Variable)) for v in learner.trainable_variables)


def test_eager_compiled_and_xla_give_the_same_gradients(row):
  learner = row.make(0)
  tasks = row.tasks()
  step = tf.constant(0, tf.int64)
  results = {}
  for mode, function in (
    ("eager", learner.compute_gradients),
    ("tf.function", tf.function(learner.compute_gradients)),
    ("xla", tf.function(learner.compute_gradients, jit_compile=True)),
  ):
    before = _snapshot(learner.trainable_variables)
    gradients, metrics = function(tasks, step)
    results[mode] = (_numpy(gradients), float(metrics["loss"]))
    for old, variable in zip(before, learner.trainable_variables):
      np.testing.assert_array_equal(old, variable.numpy())  # left unchanged
  for mode in ("tf.function", "xla"):
    for eager, other in zip(results["eager"][0], results[mode][0]):
      np.testing.assert_allclose(other, eager, rtol=2e-4, atol=2e-6, err_msg=mode)
    np.testing.assert_allclose(results[mode][1], results["eager"][1], rtol=1e-5)


def test_compute_gradients_leaves_the_variables_unchanged(row):
  learner = row.make(0)
  model = learner.model
  trainable = _snapshot(learner.trainable_variables)
  statistics = _snapshot(model.non_trainable_variables)
  learner.compute_gradients(row.tasks(), 0)
  for old, variable in zip(trainable, learner.trainable_variables):
    np.testing.assert_array_equal(old, variable.numpy())
  moved = [
    v.path
    for old, v in zip(statistics, model.non_trainable_variables)
    if not np.array_equal(old, v.numpy())
  ]
  if not row.moves_statistics:
    assert moved == []


def test_every_trainable_variable_gets_a_gradient(row):
  learner = row.make(0)
  # Move every variable off its initial value first: at initialisation every batch norm's
  # beta is 0, so a conv4 block's output is positively homogeneous in its gamma, the next
  # block's batch norm divides that scale out, and every gamma but the last block's has an
  # exact zero gradient there (not at trained weights).
  rng = np.random.default_rng(0)
  for variable in learner.trainable_variables:
    variable.assign_add(tf.cast(0.1 * rng.standard_normal(variable.shape), variable.dtype))
  gradients, _ = learner.compute_gradients(row.tasks(), 0)
  assert len(gradients) == len(learner.trainable_variables)
  pattern, reason = row.zero_gradients
  zero = [
    v.path
    for v, g in zip(learner.trainable_variables, gradients)
    if not np.any(np.asarray(g) != 0) and not (pattern and pattern in v.path)
  ]
  assert zero == [], reason


def test_a_checkpoint_round_trip_gives_the_same_evaluation(row, tmp_path):
  trained = row.make(0)
  tasks = row.tasks()
  # Move every variable off its initial value, as training would.
  gradients, _ = trained.compute_gradients(tasks, 0)
  for variable, gradient in zip(trained.trainable_variables, gradients):
    variable.assign_sub(0.1 * tf.sign(gradient))
  expected = {k: v.numpy() for k, v in trained.evaluate_tasks(tasks, 2).items()}
  path = tf.train.Checkpoint(**trained.checkpoint_items()).write(os.path.join(tmp_path, "ckpt"))
  restored = row.make(1)  # other initial weights
  before = {k: v.numpy() for k, v in restored.evaluate_tasks(tasks, 2).items()}
  assert any(not np.allclose(before[k], expected[k]) for k in expected)
  tf.train.Checkpoint(**restored.checkpoint_items()).read(path).assert_consumed()
  got = {k: v.numpy() for k, v in restored.evaluate_tasks(tasks, 2).items()}
  assert sorted(got) == sorted(expected)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name])


def test_the_same_seed_gives_the_same_numbers(row):
  tasks = row.tasks()
  first, first_metrics = row.make(3).compute_gradients(tasks, 0)
  second, second_metrics = row.make(3).compute_gradients(tasks, 0)
  for a, b in zip(_numpy(first), _numpy(second)):
    np.testing.assert_array_equal(a, b)
  assert float(first_metrics["loss"]) == float(second_metrics["loss"])
