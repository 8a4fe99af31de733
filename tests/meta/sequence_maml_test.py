"""MAML, FOMAML and Reptile over sequence models (the MANN, the LSTM): meta-gradients
against finite differences, queries predicted from the adapted network's memory, the
task-batched recurrence against tf.map_fn over Keras, and --inner_weights."""

import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann import models
from tests import gradient_check
from tests import sequence_models


def _maml(model, inner_loss="support_sequence", **options):
  options.setdefault("num_inner_steps", 2)
  return meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    inner_lr=0.5,
    task_format=meta.SequenceFormat(num_classes=sequence_models.NUM_WAYS, inner_loss=inner_loss),
    **options,
  )


@pytest.mark.parametrize("inner_loss", meta.INNER_LOSSES)
@pytest.mark.parametrize("encoder", [False, True])
def test_second_order_meta_gradients_of_maml_over_a_mann_equal_finite_differences(
  float64, encoder, inner_loss
):
  image_shape = (8, 8, 1) if encoder else (2, 2, 1)
  model = sequence_models.tiny_sequence_model("mann", encoder=encoder, image_shape=image_shape)
  learner = _maml(model, inner_loss, num_inner_steps=2)
  assert learner.task_mapping == "batched"
  tasks = sequence_models.image_tasks(image_shape=image_shape)
  analytic, _ = tf.function(learner.compute_gradients)(tasks, 0)
  analytic = [a.numpy() for a in analytic]
  # The memory starts at zero: the second derivative of its row norms must stay finite.
  assert all(np.all(np.isfinite(a)) for a in analytic)
  loss = tf.function(lambda: learner.meta_loss(tasks)[0])
  # h = 1e-6: the cosine of a nearly empty memory row curves steeply (its derivatives
  # scale with 1 / row norm), so the truncation error of h = 1e-5 reaches 2e-6.
  gradient_check.assert_directional_derivatives_close(
    loss, learner.trainable_variables, analytic, rtol=1e-6, h=1e-6
  )


@pytest.mark.parametrize(
  "kind,encoder,algorithm", [("mann", True, "maml"), ("lstm", False, "reptile")]
)
def test_task_batched_recurrence_gives_the_meta_gradients_of_map_fn_over_keras(
  float64, kind, encoder, algorithm
):
  image_shape = (8, 8, 1) if encoder else (2, 2, 1)
  tasks = sequence_models.image_tasks(
    num_tasks=3, num_shots=2, num_queries=2, image_shape=image_shape
  )
  results = {}
  for mapping in ("batched", "map_fn"):
    model = sequence_models.tiny_sequence_model(kind, encoder=encoder, image_shape=image_shape)
    task_format = meta.SequenceFormat(
      num_classes=sequence_models.NUM_WAYS, inner_loss="support_replay"
    )
    common = dict(
      objective=meta.CLASSIFICATION,
      num_inner_steps=2,
      inner_lr=0.5,
      task_mapping=mapping,
      task_format=task_format,
    )
    learner = (
      meta.Reptile(model, **common)
      if algorithm == "reptile"
      else meta.MAML(model, first_order=algorithm == "fomaml", **common)
    )
    # Eager: tracing Keras's RNN loop inside tf.map_fn, twice differentiated, takes minutes.
    gradients, metrics = learner.compute_gradients(tasks, 0)
    evaluation = learner.evaluate_tasks(tasks, 3)
    results[mapping] = (
      [g.numpy() for g in gradients],
      float(metrics["loss"]),
      evaluation["loss"].numpy(),
    )
  for batched, mapped in zip(results["batched"][0], results["map_fn"][0]):
    np.testing.assert_allclose(batched, mapped, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(results["batched"][1], results["map_fn"][1], rtol=1e-12)
  np.testing.assert_allclose(results["batched"][2], results["map_fn"][2], rtol=1e-10)


@pytest.mark.parametrize("inner_loss", meta.INNER_LOSSES)
def test_queries_are_predicted_from_the_memory_the_adapted_network_writes(float64, inner_loss):
  model = sequence_models.tiny_sequence_model("mann")
  learner = _maml(model, inner_loss, num_inner_steps=1)
  tasks = sequence_models.image_tasks(num_tasks=2, num_queries=2, image_shape=(4, 4, 1))
  scores = learner.evaluate_tasks(tasks, 1)
  initial = [v.value for v in model.trainable_variables]
  statistics = [v.value for v in model.non_trainable_variables]

  for t in range(2):
    # By hand: one SGD step on the support loss, then each query after the support set.
    support_x, support_y = tasks.support_x[t], tasks.support_y[t]
    if inner_loss == "support_replay":
      shown_x, shown_y = tf.concat([support_x] * 2, 0), tf.concat([support_y] * 2, 0)
    else:
      shown_x, shown_y = support_x, support_y
    with tf.GradientTape() as tape:
      tape.watch(initial)
      outputs = model.stateless_call(
        initial, statistics, _sequence(shown_x, shown_y), training=True
      )[0][0]
      loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(support_y, outputs[-len(support_y) :])
      )
    adapted = [w - 0.5 * g for w, g in zip(initial, tape.gradient(loss, initial))]
    expected, stale = [], []
    for j in range(tasks.query_y.shape[1]):
      x = _sequence(
        tf.concat([support_x, tasks.query_x[t, j : j + 1]], 0),
        tf.concat([support_y, tasks.query_y[t, j : j + 1]], 0),
      )
      expected.append(model.stateless_call(adapted, statistics, x, training=True)[0][0, -1])
      # The wrong composition: the memory written by the initial network, read by the
      # adapted one at the query step.
      stale.append(_cell_by_cell(model, [initial] * len(support_y) + [adapted], x)[-1])
    query_loss = lambda outputs, t=t: float(
      tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(tasks.query_y[t], tf.stack(outputs))
      )
    )
    np.testing.assert_allclose(scores["loss"][t, 1], query_loss(expected), rtol=1e-10)
    assert abs(float(scores["loss"][t, 1]) - query_loss(stale)) > 1e-4


def _sequence(images, labels):
  """[L, H, W, C], [L] -> one sequence [1, L, H*W*C + N]: pixels, previous label."""
  one_hot = tf.one_hot(labels, sequence_models.NUM_WAYS, dtype=images.dtype)
  previous = tf.concat([tf.zeros_like(one_hot[:1]), one_hot[:-1]], axis=0)
  return tf.concat([tf.reshape(images, [len(labels), -1]), previous], axis=-1)[None]


def _cell_by_cell(model, weights_per_step, x):
  """The MANN's outputs [L, N] on x [1, L, D], step t run by its cell under
  weights_per_step[t] (model weights), the state carried from step to step."""
  cell = model.get_layer("rnn").cell
  position = {id(w): i for i, w in enumerate(model.trainable_weights)}
  cell_statistics = [v.value for v in cell.non_trainable_variables]
  states = [tf.zeros([1, size], x.dtype) for size in cell.state_size]
  outputs = []
  for t, weights in enumerate(weights_per_step):
    cell_weights = [weights[position[id(w)]] for w in cell.trainable_weights]
    (output, states), _ = cell.stateless_call(cell_weights, cell_statistics, x[:, t], states)
    outputs.append(output[0])
  return outputs


@pytest.mark.parametrize("group", ["head", "controller", "encoder"])
def test_weights_outside_the_adapted_group_stay_and_are_still_meta_learned(float64, group):
  model = sequence_models.tiny_sequence_model("mann", encoder=True, image_shape=(8, 8, 1))
  mask = models.adapted_weights(model, group)
  learner = _maml(model, num_inner_steps=2, adapted_weights=mask)
  tasks = sequence_models.image_tasks(image_shape=(8, 8, 1))
  weights = [tf.broadcast_to(v.value[None], [2, *v.shape]) for v in model.trainable_variables]
  statistics = [v.value for v in model.non_trainable_variables]
  trajectory, _ = learner._adapt(
    learner._batched_model,
    weights,
    [statistics] * 2,
    tasks,
    learning_rates=learner.inner_learning_rates(2),
    first_order=False,
  )
  for initial, final, adapted in zip(weights, trajectory[-1], mask):
    if adapted:
      assert np.abs(final.numpy() - initial.numpy()).max() > 0
    else:
      np.testing.assert_array_equal(final.numpy(), initial.numpy())
  gradients, _ = learner.compute_gradients(tasks, 0)
  names = [v.path for v in model.trainable_variables]
  no_gradient = [n for n, g in zip(names, gradients) if not np.any(g.numpy() != 0)]
  assert no_gradient == []


def test_weight_groups_of_each_model():
  mann_model = sequence_models.tiny_sequence_model("mann", encoder=True, image_shape=(8, 8, 1))
  groups = dict(
    zip([v.path for v in mann_model.trainable_weights], models.weight_groups(mann_model))
  )
  assert groups["conv4_features/block0_conv/kernel"] == "encoder"
  assert groups["rnn/mann_cell/controller/kernel"] == "controller"
  assert groups["rnn/mann_cell/keys/kernel"] == "controller"
  assert groups["rnn/mann_cell/key_strengths/bias"] == "controller"
  assert groups["rnn/mann_cell/output/kernel"] == "head"
  lstm_model = sequence_models.tiny_sequence_model("lstm")
  assert models.weight_groups(lstm_model) == ["controller"] * 3 + ["head"] * 2
  conv4 = models.conv4(num_classes=5, num_filters=2)
  assert models.weight_groups(conv4) == ["encoder"] * 16 + ["head"] * 2
  with pytest.raises(ValueError, match="has no controller weights"):
    models.adapted_weights(conv4, "controller")


def test_the_joint_objective_over_a_mann_has_the_meta_gradient_of_finite_differences(float64):
  """The query loss before the inner steps (the memory alone) weighted into MAML's
  meta-loss, over the batched recurrence: second-order meta-gradient against central
  differences along a direction per variable."""
  model = sequence_models.tiny_sequence_model("mann", image_shape=(2, 2, 1))
  learner = _maml(model, "support_replay", num_inner_steps=1, pre_adaptation_loss_weight=0.5)
  assert learner.task_mapping == "batched"
  tasks = sequence_models.image_tasks(image_shape=(2, 2, 1))
  analytic, metrics = tf.function(learner.compute_gradients)(tasks, 0)
  assert "loss_before_adaptation" in metrics
  before = _maml(model, "support_replay", num_inner_steps=0).meta_loss(tasks)[0]
  np.testing.assert_allclose(metrics["loss_before_adaptation"], before, rtol=1e-10)
  gradient_check.assert_directional_derivatives_close(
    tf.function(lambda: learner.meta_loss(tasks)[0]),
    learner.trainable_variables,
    [a.numpy() for a in analytic],
    rtol=1e-6,
    h=1e-6,
  )
