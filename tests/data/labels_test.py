"""Tests of mann/data/labels.py: integer and string labels as vectors."""

import numpy as np
import tensorflow as tf

from mann.data import labels as labels_lib


def test_string_labels_are_five_base_five_characters():
  labels = tf.constant([[0, 7], [3124, 5**4]])
  np.testing.assert_array_equal(
    labels_lib.string_characters(labels),
    [[[0, 0, 0, 0, 0], [2, 1, 0, 0, 0]], [[4, 4, 4, 4, 4], [0, 0, 0, 0, 1]]],
  )
  vectors = labels_lib.label_vectors(labels, 5, string_labels=True).numpy()
  assert vectors.shape == (2, 2, 25)
  np.testing.assert_array_equal(vectors.reshape(2, 2, 5, 5).sum(-1), np.ones((2, 2, 5)))
  np.testing.assert_array_equal(np.argmax(vectors[0, 1].reshape(5, 5), -1), [2, 1, 0, 0, 0])


def test_integer_labels_are_one_hot():
  vectors = labels_lib.label_vectors(tf.constant([2, 0]), 3, string_labels=False).numpy()
  np.testing.assert_array_equal(vectors, [[0, 0, 1], [1, 0, 0]])


def test_label_sizes_and_spaces():
  assert labels_lib.label_size(5, string_labels=False) == 5
  assert labels_lib.label_size(5, string_labels=True) == 25
  assert labels_lib.label_space(string_labels=True) == 5**5 == labels_lib.STRING_LABEL_SPACE
  assert labels_lib.label_space(string_labels=False) is None
