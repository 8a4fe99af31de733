"""Tests of mann/meta/episodic.py: inputs, loss and accuracy by instance."""

import keras
import numpy as np
import tensorflow as tf

from mann import meta
from mann.data import episode as episode_lib


class _Oracle(keras.Model):
  """Predicts the label fed at the step (= the previous step's label): right exactly
  when a step repeats the previous step's class."""

  def call(self, inputs, training=False):
    return inputs[..., -3:] * 10.0


def test_inputs_are_flat_images_and_the_previous_label():
  images = tf.reshape(tf.range(2 * 3 * 4, dtype=tf.float32), [2, 3, 2, 2, 1])
  labels = tf.constant([[1, 0, 2], [2, 2, 0]])
  inputs = meta.episodic.sequence_inputs(images, labels, 3).numpy()
  assert inputs.shape == (2, 3, 4 + 3)
  np.testing.assert_array_equal(inputs[0, 1, :4], [4, 5, 6, 7])
  np.testing.assert_array_equal(inputs[0, :, 4:], [[0, 0, 0], [0, 1, 0], [1, 0, 0]])
  np.testing.assert_array_equal(inputs[1, 2, 4:], [0, 0, 1])


def test_accuracy_by_instance_by_hand():
  labels = tf.constant([[0, 0, 1, 1, 0, 1]])  # instance numbers 1 2 1 2 3 3
  batch = episode_lib.Episode(
    tf.zeros([1, 6, 1, 1, 1]), labels, tf.zeros([1, 0, 1, 1, 1]), tf.zeros([1, 0], tf.int32)
  )
  learner = meta.Episodic(_Oracle(), num_classes=3, num_instances=3)
  # The oracle predicts the previous step's label: right at steps 1 and 3 (instance 2 of
  # each class) and at step 0 (all-zero input, argmax 0 = class 0: instance 1), wrong at
  # steps 2 (instance 1), 4 and 5 (instance 3).
  scores = learner.evaluate_tasks(batch)["accuracy_by_instance"].numpy()
  np.testing.assert_allclose(scores, [[0.5, 1.0, 0.0]])


def test_gradients_reach_every_weight_of_a_sequence_model():
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((None, 4 + 3)), keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(3)]
  )
  learner = meta.Episodic(model, num_classes=3, num_instances=2)
  batch = episode_lib.Episode(
    tf.random.stateless_uniform([2, 6, 2, 2, 1], seed=[0, 1]),
    tf.constant([[0, 1, 2, 0, 1, 2]] * 2),
    tf.zeros([2, 0, 2, 2, 1]),
    tf.zeros([2, 0], tf.int32),
  )
  gradients, metrics = learner.compute_gradients(batch)
  assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
  logits = model(meta.episodic.sequence_inputs(batch.support_x, batch.support_y, 3))
  np.testing.assert_allclose(
    metrics["loss"], np.mean(meta.CLASSIFICATION.loss(batch.support_y, logits)), rtol=1e-6
  )


def _few_shot_batch(seed=0, num_tasks=2, ways=3, shots=2, queries=2):
  rng = np.random.default_rng(seed)
  support_y = np.stack(
    [rng.permutation(np.repeat(np.arange(ways), shots)) for _ in range(num_tasks)]
  )
  query_y = np.tile(np.repeat(np.arange(ways), queries), (num_tasks, 1))
  return episode_lib.Episode(
    tf.constant(rng.uniform(size=(num_tasks, ways * shots, 2, 2, 1)), tf.float32),
    tf.constant(support_y, tf.int32),
    tf.constant(rng.uniform(size=(num_tasks, ways * queries, 2, 2, 1)), tf.float32),
    tf.constant(query_y, tf.int32),
  )


def test_few_shot_scores_each_query_after_the_whole_support_by_hand():
  keras.utils.set_random_seed(1)
  ways = 3
  model = keras.Sequential(
    [
      keras.Input((None, 4 + ways)),
      keras.layers.LSTM(6, return_sequences=True),
      keras.layers.Dense(ways),
    ]
  )
  batch = _few_shot_batch()
  learner = meta.Episodic(model, num_classes=ways, num_instances=3)
  scores = learner.evaluate_tasks(batch)
  assert scores["accuracy"].shape == (2, 1) and scores["loss"].shape == (2, 1)
  support_x, support_y, query_x, query_y = (p.numpy() for p in batch)
  for t in range(2):
    correct, losses = [], []
    for j in range(query_y.shape[1]):
      # Step s gets image s and the label of step s-1 (none at s = 0).
      images = np.concatenate([support_x[t], query_x[t, j : j + 1]]).reshape(1, -1, 4)
      previous = np.zeros((1, images.shape[1], ways), np.float32)
      previous[0, np.arange(1, images.shape[1]), support_y[t]] = 1.0
      logits = model(np.concatenate([images, previous], axis=-1)).numpy()[0, -1]
      correct.append(np.argmax(logits) == query_y[t, j])
      log_probabilities = logits - np.log(np.sum(np.exp(logits)))
      losses.append(-log_probabilities[query_y[t, j]])
    np.testing.assert_allclose(scores["accuracy"][t, 0], np.mean(correct), rtol=1e-6)
    np.testing.assert_allclose(scores["loss"][t, 0], np.mean(losses), rtol=1e-5)


def test_few_shot_training_scores_every_step_of_every_query_sequence():
  keras.utils.set_random_seed(2)
  model = keras.Sequential(
    [keras.Input((None, 4 + 3)), keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(3)]
  )
  batch = _few_shot_batch(seed=3)
  learner = meta.Episodic(model, num_classes=3, num_instances=3)
  gradients, metrics = learner.compute_gradients(batch)
  assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
  # 2 tasks x 6 queries = 12 sequences of 6 support steps + 1 query step.
  images = np.concatenate(
    [np.repeat(batch.support_x.numpy(), 6, axis=0), batch.query_x.numpy().reshape(12, 1, 2, 2, 1)],
    axis=1,
  )
  labels = np.concatenate(
    [np.repeat(batch.support_y.numpy(), 6, axis=0), batch.query_y.numpy().reshape(12, 1)], axis=1
  )
  logits = model(meta.episodic.sequence_inputs(tf.constant(images), tf.constant(labels), 3))
  np.testing.assert_allclose(
    metrics["loss"], np.mean(meta.CLASSIFICATION.loss(labels, logits)), rtol=1e-6
  )


def test_string_label_loss_sums_the_characters_and_accuracy_needs_all_of_them():
  labels = tf.constant([[7, 3124]])  # characters [2,1,0,0,0] and [4,4,4,4,4]
  logits = np.zeros((1, 2, 25), np.float32)
  logits[0, 0].reshape(5, 5)[np.arange(5), [2, 1, 0, 0, 0]] = 3.0  # all right
  logits[0, 1].reshape(5, 5)[np.arange(5), [4, 4, 4, 4, 0]] = 3.0  # last character wrong
  objective = meta.losses.STRING_CLASSIFICATION
  np.testing.assert_allclose(objective.metric(labels, tf.constant(logits)), [0.5])
  right = -np.log(np.exp(3.0) / (np.exp(3.0) + 4))  # a confident right character
  wrong = -np.log(1 / (np.exp(3.0) + 4))  # the target letter at 0 where another has 3
  np.testing.assert_allclose(
    objective.loss(labels, tf.constant(logits)), [(5 * right + 4 * right + wrong) / 2], rtol=1e-5
  )
