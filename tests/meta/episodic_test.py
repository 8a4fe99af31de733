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
  batch = episode_lib.Episode(tf.zeros([1, 6, 1, 1, 1]), labels,
                              tf.zeros([1, 0, 1, 1, 1]), tf.zeros([1, 0], tf.int32))
  learner = meta.Episodic(_Oracle(), num_classes=3, num_instances=3)
  # The oracle predicts the previous step's label: right at steps 1 and 3 (instance 2 of
  # each class) and at step 0 (all-zero input, argmax 0 = class 0: instance 1), wrong at
  # steps 2 (instance 1), 4 and 5 (instance 3).
  scores = learner.evaluate_tasks(batch)["accuracy_by_instance"].numpy()
  np.testing.assert_allclose(scores, [[0.5, 1.0, 0.0]])


def test_gradients_reach_every_weight_of_a_sequence_model():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((None, 4 + 3)),
                            keras.layers.LSTM(5, return_sequences=True),
                            keras.layers.Dense(3)])
  learner = meta.Episodic(model, num_classes=3, num_instances=2)
  batch = episode_lib.Episode(tf.random.stateless_uniform([2, 6, 2, 2, 1], seed=[0, 1]),
                              tf.constant([[0, 1, 2, 0, 1, 2]] * 2),
                              tf.zeros([2, 0, 2, 2, 1]), tf.zeros([2, 0], tf.int32))
  gradients, metrics = learner.compute_gradients(batch)
  assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
  logits = model(meta.episodic.sequence_inputs(batch.support_x, batch.support_y, 3))
  np.testing.assert_allclose(metrics["loss"], np.mean(
      meta.CLASSIFICATION.loss(batch.support_y, logits)), rtol=1e-6)
