"""The typed seam between mann.meta and the task-batched models.

A task engine runs a Keras model functionally for T tasks at once, each with its own
weights, so that code written for one task's `model.stateless_call` (mann.meta's inner
loop) runs all of them when handed the engine in the model's place.
task_batched.TaskBatchedModel (conv4, mlp) and task_batched_sequence.
TaskBatchedSequenceModel (the MANN, the LSTM) implement it; mann.meta dispatches on these
protocols, never on attribute or layer names.
"""

from typing import Protocol, runtime_checkable

import keras
import tensorflow as tf


@runtime_checkable
class TaskEngine(Protocol):
  """T tasks of `model` at once."""

  model: keras.Model

  def task_weights(self, weights: list[tf.Tensor], num_tasks: int) -> list:
    """The initial weights of T tasks from the shared ones: each [T, *shape], or a
    low_rank.RecordedKernel standing in for it."""
    ...

  def stateless_call(
    self, weights: list, non_trainable: list[tf.Tensor], x: tf.Tensor, *, training: bool
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """(outputs [T, B, ...], non-trainable weights after the pass) for inputs
    x [T, B, ...] under per-task weights [T, *shape]."""
    ...


@runtime_checkable
class BranchedTaskEngine(TaskEngine, Protocol):
  """A sequence engine that runs the prefix its S sequences share once per task."""

  def branched_call(
    self,
    weights: list,
    non_trainable: list[tf.Tensor],
    prefix: tf.Tensor,
    branches: tf.Tensor,
    *,
    training: bool,
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """stateless_call's outputs for the S sequences [prefix; branch j] (the branches'
    steps only): prefix [T, Lp, D], branches [T, S, Lb, D] -> [T, S, Lb, N]."""
    ...
