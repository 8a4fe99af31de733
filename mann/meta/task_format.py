"""Task formats: how a task's support and query sets become a model's inputs.

A gradient-based learner (MAML, Reptile) descends a loss on the support set and scores
the query set; what it feeds the model for each is the task format's, so that one
algorithm adapts a feed-forward network and a sequence model alike:

  ExampleFormat: the examples are the inputs (conv4 on images, the MLP on points);
  SequenceFormat: a sequence model (models.mann, models.lstm) reads an episode as a
    sequence of steps, each an image with the previous step's label (Santoro et al.
    2016), and must predict each step's label before it is given.

A format's forward functions take the model, the weights and one task, or, with a
task-batched model, T tasks stacked on a leading axis: every shape below may carry
leading axes [...] before the example axis.
"""

import typing

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.data import santoro
from mann.meta import inner_loop
from mann.models import task_engine

INNER_LOSSES = ("support_sequence", "support_replay")


class TaskFormat(typing.Protocol):
  """Forward passes on a task's support and query sets, as inner_loop.Forward functions."""

  def support_forward(
    self, model, task: episode_lib.Episode, *, training: bool
  ) -> inner_loop.Forward:
    """(weights, statistics) -> (outputs aligned with task.support_y, statistics)."""
    ...

  def query_forward(
    self, model, task: episode_lib.Episode, *, training: bool
  ) -> inner_loop.Forward:
    """(weights, statistics) -> (outputs aligned with task.query_y, statistics)."""
    ...


class ExampleFormat:
  """Each support or query example is one input of the model: outputs [..., B, N]."""

  def support_forward(self, model, task, *, training):
    return lambda w, s: model.stateless_call(w, s, task.support_x, training=training)

  def query_forward(self, model, task, *, training):
    return lambda w, s: model.stateless_call(w, s, task.query_x, training=training)


def sequence_inputs(
  images: tf.Tensor, labels: tf.Tensor, num_classes: int, string_labels: bool = False
) -> tf.Tensor:
  """A sequence model's inputs: each step's flattened image and the previous step's label.

  Args:
    images: [..., L, H, W, C] (or [..., L, D] vectors).
    labels: int [..., L].
    num_classes: N.
    string_labels: labels are Santoro et al.'s strings (25-wide label vectors).

  Returns:
    [..., L, H*W*C + N] (N -> 25 with string labels); step 0 reads a zero label.
  """
  flat = tf.reshape(images, [*labels.shape, -1])
  previous = santoro.previous_label_inputs(labels, num_classes, string_labels)
  return tf.concat([flat, tf.cast(previous, flat.dtype)], axis=-1)


def query_sequences(support: tf.Tensor, query: tf.Tensor, num_lead_axes: int) -> tf.Tensor:
  """One sequence per query: the support set, then that query.

  Args:
    support: [*lead, NK, ...] images or labels.
    query: [*lead, NQ, ...].
    num_lead_axes: len(lead) (0 for one task, 1 for a meta-batch [T, ...]).

  Returns:
    [*lead, NQ, NK + 1, ...]: row j is the support set followed by query j.
  """
  num_queries = query.shape[num_lead_axes]
  support = tf.repeat(tf.expand_dims(support, num_lead_axes), num_queries, axis=num_lead_axes)
  return tf.concat([support, tf.expand_dims(query, num_lead_axes + 1)], axis=num_lead_axes + 1)


class SequenceFormat:
  """Tasks as sequences for a sequence model [..., S, L, D] -> [..., S, L, N].

  Support (the inner loss), by inner_loss:
    "support_sequence": the support set in its (shuffled) order, one sequence, every
      step scored. In 1-shot a class is never shown before its own step, so a step can
      only be right by elimination (the classes whose labels were already given).
    "support_replay": the support sequence shown twice, one sequence of 2*NK steps, the
      second pass scored: what the memory (or state) recalls of the first.
  Query: one sequence per query, the support sequence followed by that query (the
    query step reads the last support label, never its own); the query step's output
    is its prediction. Run under the weights being scored (the adapted ones), so the
    memory is rebuilt from the support set by the adapted network.
  """

  def __init__(
    self, *, num_classes: int, string_labels: bool = False, inner_loss: str = "support_sequence"
  ):
    if inner_loss not in INNER_LOSSES:
      raise ValueError(f"inner_loss must be one of {INNER_LOSSES}, got {inner_loss!r}")
    self.num_classes = num_classes
    self.string_labels = string_labels
    self.inner_loss = inner_loss

  def _inputs(self, images, labels):
    return sequence_inputs(images, labels, self.num_classes, self.string_labels)

  def support_forward(self, model, task, *, training):
    images, labels = task.support_x, task.support_y
    example_axis = labels.shape.rank - 1
    num_support = labels.shape[-1]
    if self.inner_loss == "support_replay":
      images = tf.concat([images, images], axis=example_axis)
      labels = tf.concat([labels, labels], axis=-1)
    x = tf.expand_dims(self._inputs(images, labels), example_axis)  # [..., 1, L, D]

    def forward(weights, statistics):
      outputs, new_statistics = model.stateless_call(weights, statistics, x, training=training)
      outputs = tf.squeeze(outputs, example_axis)  # [..., L, N]
      if self.inner_loss == "support_replay":
        outputs = outputs[..., num_support:, :]
      return outputs, new_statistics

    return forward

  def query_forward(self, model, task, *, training):
    lead = task.query_y.shape.rank - 1
    x = self._inputs(
      query_sequences(task.support_x, task.query_x, lead),
      query_sequences(task.support_y, task.query_y, lead),
    )  # [..., NQ, NK+1, D]

    num_support = task.support_y.shape[-1]
    if isinstance(model, task_engine.BranchedTaskEngine):
      # The task-batched model runs the shared support prefix once per task (the same
      # numbers: see TaskBatchedSequenceModel.branched_call).
      prefix = x[:, 0, :num_support]  # [T, NK, D]
      branches = x[:, :, num_support:]  # [T, NQ, 1, D]

      def forward(weights, statistics):
        outputs, new_statistics = model.branched_call(
          weights, statistics, prefix, branches, training=training
        )
        return outputs[..., -1, :], new_statistics

      return forward

    def forward(weights, statistics):
      outputs, new_statistics = model.stateless_call(weights, statistics, x, training=training)
      return outputs[..., -1, :], new_statistics  # [..., NQ, N]

    return forward
