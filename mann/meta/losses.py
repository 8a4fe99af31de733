"""Per-task losses and metrics: what the inner and outer loops minimise and report."""

import typing

import tensorflow as tf

from mann.data import labels as labels_lib


class TaskObjective(typing.NamedTuple):
  """A loss to minimise and a metric to report, both means over a task's examples.

  loss(y_true, outputs) and metric(y_true, outputs) map labels [B] (or targets
  [B, D]) and model outputs [B, N] (or [B, D]) to scalars; with leading axes (tasks
  [T, B, ...]) they average over each task's examples only and return [T].
  """

  name: str
  loss: typing.Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
  metric: typing.Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
  metric_name: str


def _float32_at_least(outputs):
  """Outputs computed in a 16-bit type (mixed precision) as float32: losses and metrics
  are always reduced in float32 or wider."""
  if outputs.dtype in (tf.bfloat16, tf.float16):
    return tf.cast(outputs, tf.float32)
  return outputs


def _cross_entropy(labels, logits):
  logits = _float32_at_least(logits)
  return tf.reduce_mean(
    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits),
    axis=-1,
  )


def _accuracy(labels, logits):
  """An example is right when its largest logit is its label's and every logit is
  finite (argmax of NaN logits is class 0: scored, it would look like chance)."""
  logits = _float32_at_least(logits)
  predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
  right = tf.equal(predicted, tf.cast(labels, tf.int32)) & tf.reduce_all(
    tf.math.is_finite(logits), axis=-1
  )
  return tf.reduce_mean(tf.cast(right, logits.dtype), axis=-1)


def _mean_squared_error(targets, predictions):
  predictions = _float32_at_least(predictions)
  return tf.reduce_mean(tf.square(predictions - tf.cast(targets, predictions.dtype)), axis=[-2, -1])


def _string_logits(logits):
  """[..., 25] -> [..., 5 characters, 5 letters]."""
  logits = _float32_at_least(logits)
  return tf.reshape(
    logits, [*logits.shape[:-1], labels_lib.STRING_LENGTH, labels_lib.STRING_ALPHABET]
  )


def _string_cross_entropy(labels, logits):
  """Santoro et al.'s string labels: the sum over the 5 characters of each one's
  softmax cross-entropy, averaged over the examples."""
  per_character = tf.nn.sparse_softmax_cross_entropy_with_logits(
    labels=labels_lib.string_characters(labels), logits=_string_logits(logits)
  )
  return tf.reduce_mean(tf.reduce_sum(per_character, axis=-1), axis=-1)


def _string_accuracy(labels, logits):
  """An example is right when every character of its string is."""
  logits = _float32_at_least(logits)  # a bfloat16 mean of 0/1 would round the accuracy
  string_logits = _string_logits(logits)
  predicted = tf.argmax(string_logits, axis=-1, output_type=tf.int32)
  right = tf.reduce_all(
    tf.equal(predicted, labels_lib.string_characters(labels))
    & tf.reduce_all(tf.math.is_finite(string_logits), axis=-1),
    axis=-1,
  )
  return tf.reduce_mean(tf.cast(right, logits.dtype), axis=-1)


CLASSIFICATION = TaskObjective("classification", _cross_entropy, _accuracy, "accuracy")
STRING_CLASSIFICATION = TaskObjective(
  "string classification", _string_cross_entropy, _string_accuracy, "accuracy"
)
REGRESSION = TaskObjective("regression", _mean_squared_error, _mean_squared_error, "mse")
