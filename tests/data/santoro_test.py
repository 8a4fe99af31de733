"""Tests of mann/data/santoro.py: Santoro et al.'s sequence protocol."""

import numpy as np
import tensorflow as tf

from mann.data import labels as labels_lib
from mann.data import santoro
from tests import class_images


def _source(num_classes=12, per_class=15):
  images = np.zeros((num_classes * per_class, 2, 2, 1), np.uint8)
  images[:, 0, 0, 0] = np.repeat(np.arange(num_classes), per_class)  # pixel [0, 0]: the class
  return class_images.class_images(images, num_classes)


def test_sequence_holds_each_class_l_times_in_random_order():
  sampler = santoro.SequenceSampler(_source(), num_ways=5, num_instances=10, seed=0)
  orders = []
  for index in range(4):
    episode = sampler.episode(index)
    labels = episode.support_y.numpy()
    assert episode.support_x.shape == (50, 2, 2, 1) and episode.query_x.shape[0] == 0
    np.testing.assert_array_equal(np.bincount(labels, minlength=5), np.full(5, 10))
    classes = np.rint(episode.support_x.numpy()[:, 0, 0, 0] * 255).astype(int)
    for label in range(5):  # one source class per label
      assert len(set(classes[labels == label])) == 1
    assert not np.array_equal(labels, np.sort(labels))  # shuffled, not class-major
    orders.append(labels)
  assert not np.array_equal(orders[0], orders[1])
  again = santoro.SequenceSampler(_source(), num_ways=5, num_instances=10, seed=0)
  np.testing.assert_array_equal(again.episode(2).support_y, orders[2])


def test_previous_label_is_the_input_of_the_next_step():
  labels = tf.constant([2, 0, 2, 1])
  np.testing.assert_array_equal(
    santoro.previous_label_inputs(labels, 3), [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]
  )


def test_instance_numbers_count_presentations():
  labels = tf.constant([[2, 0, 2, 1, 2, 0]])
  np.testing.assert_array_equal(santoro.instance_numbers(labels), [[1, 1, 2, 1, 3, 2]])


def test_string_labels_are_read_at_the_step_after_their_own():
  labels = tf.constant([[0, 7], [3124, 5**4]])
  vectors = labels_lib.label_vectors(labels, 5, string_labels=True).numpy()
  previous = santoro.previous_label_inputs(labels, 5, string_labels=True).numpy()
  np.testing.assert_array_equal(previous[:, 0], 0.0)
  np.testing.assert_array_equal(previous[:, 1], vectors[:, 0])


def test_string_labelled_sequences_draw_distinct_strings_per_episode():
  sampler = santoro.SequenceSampler(
    _source(), num_ways=5, num_instances=3, seed=0, string_labels=True
  )
  seen = set()
  for index in range(10):
    labels = sampler.episode(index).support_y.numpy()
    strings = sorted(set(labels))
    assert len(strings) == 5 and all(0 <= s < labels_lib.STRING_LABEL_SPACE for s in strings)
    assert all((labels == s).sum() == 3 for s in strings)
    seen.update(strings)
  assert len(seen) > 40  # fresh strings per episode, not one fixed set
