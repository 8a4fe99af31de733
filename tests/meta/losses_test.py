"""Tests of mann/meta/losses.py against the objectives written out in numpy."""

import numpy as np
import pytest
import tensorflow as tf

from mann import meta
from mann.data import labels as labels_lib


def _log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_classification_is_mean_cross_entropy_and_accuracy_per_task():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 3))  # [T, B, N]
  labels = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
  log_p = np.take_along_axis(_log_softmax(logits), labels[..., None], axis=-1)[..., 0]
  loss = meta.CLASSIFICATION.loss(tf.constant(labels), tf.constant(logits))
  np.testing.assert_allclose(loss, -log_p.mean(axis=-1), rtol=1e-12)
  accuracy = meta.CLASSIFICATION.metric(tf.constant(labels), tf.constant(logits))
  np.testing.assert_allclose(accuracy, (logits.argmax(-1) == labels).mean(axis=-1))
  assert meta.CLASSIFICATION.metric_name == "accuracy"


def test_an_example_with_a_nonfinite_logit_is_wrong_whatever_its_argmax():
  # Labels 0: the argmax of a NaN row is 0 too, which scored right would look like chance.
  logits = np.array([[[np.nan, np.nan, np.nan], [5.0, 1.0, 0.0], [np.inf, 0.0, 0.0], [1, 2, 3]]])
  labels = np.zeros((1, 4), np.int64)
  accuracy = meta.CLASSIFICATION.metric(tf.constant(labels), tf.constant(logits))
  np.testing.assert_allclose(accuracy, [0.25])  # only the finite row [5, 1, 0] is right


def test_regression_is_the_mean_squared_error_per_task():
  rng = np.random.default_rng(1)
  targets, predictions = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 2))
  mse = meta.REGRESSION.loss(tf.constant(targets), tf.constant(predictions))
  np.testing.assert_allclose(mse, ((predictions - targets) ** 2).mean(axis=(1, 2)), rtol=1e-12)
  assert meta.REGRESSION.metric is meta.REGRESSION.loss and meta.REGRESSION.metric_name == "mse"


def test_string_labels_sum_five_character_cross_entropies():
  rng = np.random.default_rng(2)
  labels = np.array([[0, 7, 3124]])  # [T=1, B=3]
  logits = rng.normal(size=(1, 3, 25))
  characters = labels_lib.string_characters(tf.constant(labels)).numpy()  # [1, 3, 5]
  log_p = _log_softmax(logits.reshape(1, 3, 5, 5))
  picked = np.take_along_axis(log_p, characters[..., None], axis=-1)[..., 0]
  loss = meta.STRING_CLASSIFICATION.loss(tf.constant(labels), tf.constant(logits))
  np.testing.assert_allclose(loss, -picked.sum(axis=-1).mean(axis=-1), rtol=1e-12)


def test_a_string_label_is_right_only_when_all_five_characters_are():
  labels = tf.constant([7, 7])  # characters 2, 1, 0, 0, 0
  right = np.zeros((5, 5))
  right[np.arange(5), [2, 1, 0, 0, 0]] = 10.0
  one_wrong = right.copy()
  one_wrong[4] = np.roll(one_wrong[4], 1)  # the last character predicted 1, not 0
  logits = tf.constant(np.stack([right.ravel(), one_wrong.ravel()]))
  per_example = [
    float(meta.STRING_CLASSIFICATION.metric(labels[i : i + 1], logits[i : i + 1])) for i in range(2)
  ]
  assert per_example == [1.0, 0.0]
  assert float(meta.STRING_CLASSIFICATION.metric(labels, logits)) == pytest.approx(0.5)


@pytest.mark.parametrize("objective", [meta.CLASSIFICATION, meta.STRING_CLASSIFICATION])
def test_bfloat16_outputs_give_float32_losses_and_metrics(objective):
  """Mixed precision: a bfloat16 mean of 0/1 rounds (7 of 9 right is 0.77734375 in
  bfloat16), so the metric, like the loss, is reduced in float32."""
  num_classes = 25 if objective is meta.STRING_CLASSIFICATION else 3
  labels = tf.constant([[0] * 9])  # string label 0: every character 0
  logits = np.zeros((1, 9, num_classes), np.float32)
  logits[0, :7, 0] = 5.0  # 7 right
  logits[0, 7:, 1] = 5.0  # 2 wrong (their first character, or class, 1)
  for value in (
    objective.loss(labels, tf.constant(logits, tf.bfloat16)),
    objective.metric(labels, tf.constant(logits, tf.bfloat16)),
  ):
    assert value.dtype == tf.float32
  accuracy = objective.metric(labels, tf.constant(logits, tf.bfloat16))
  assert float(accuracy[0]) == pytest.approx(7 / 9, abs=1e-7)
