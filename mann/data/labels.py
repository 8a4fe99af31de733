"""How a class label is represented: an integer 0..N-1 (one-hot for a sequence model's
input), or Santoro et al.'s string labels: 5 characters over a 5-letter alphabet, so an
episode's classes get labels from 3125 possible strings; the network reads a string as
5 one-hots (25 inputs) and writes it with 5 softmaxes of 5 (mann.meta.losses)."""

from typing import Optional

import tensorflow as tf

STRING_LENGTH = 5
STRING_ALPHABET = 5
STRING_LABEL_SPACE = STRING_ALPHABET**STRING_LENGTH


def string_characters(labels: tf.Tensor) -> tf.Tensor:
  """The characters of string labels: int [...] in [0, 3125) -> int32 [..., 5] in [0, 5)
  (the base-5 digits, least significant first)."""
  powers = tf.constant([STRING_ALPHABET**k for k in range(STRING_LENGTH)], tf.int32)
  return (tf.cast(labels, tf.int32)[..., None] // powers) % STRING_ALPHABET


def label_space(string_labels: bool) -> Optional[int]:
  """FewShotSampler's label_space: the 3125 strings with string labels, else None
  (labels 0..N-1)."""
  return STRING_LABEL_SPACE if string_labels else None


def label_size(num_classes: int, string_labels: bool) -> int:
  """Width of a label vector, read and predicted: N, or 25 with string labels."""
  return STRING_LENGTH * STRING_ALPHABET if string_labels else num_classes


def label_vectors(labels: tf.Tensor, num_classes: int, string_labels: bool) -> tf.Tensor:
  """What a sequence model reads for a label: int [...] -> float32 [..., N] one-hot,
  or [..., 25] (5 one-hot characters) with string labels."""
  if string_labels:
    one_hots = tf.one_hot(string_characters(labels), STRING_ALPHABET)
    return tf.reshape(one_hots, [*labels.shape, label_size(num_classes, True)])
  return tf.one_hot(labels, num_classes)
