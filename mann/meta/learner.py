"""The contract every meta-learner keeps, so that one trainer and one evaluation loop
serve MAML, FOMAML, Reptile, Transfer, Episodic and their combinations with any model.

tests/meta/conformance_test.py runs every learner through the same checks (eager,
tf.function and XLA agree; a checkpoint round trip; variables untouched by a gradient
computation; every variable meta-learned; same seed, same numbers): a new learner gets
them all by adding one row to its table.
"""

import typing

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import losses


def traced_as_written(method):
  """Marks a learner's entry point to be traced by tf.function as Python, without
  AutoGraph: learners loop over static ranges only (inner steps, time steps), and
  AutoGraph's rewriting of every function they call was more than half of the time to
  trace a MAML-over-MANN meta-step (a tiny one: 20 s with it, 9 s without)."""
  return tf.autograph.experimental.do_not_convert(method)


@typing.runtime_checkable
class MetaLearner(typing.Protocol):
  """What mann.training.train and mann.evaluation.score_tasks need of a learner."""

  objective: losses.TaskObjective

  @property
  def trainable_variables(self) -> list[tf.Variable]:
    """The variables the outer optimiser updates, in the order of compute_gradients'."""
    ...

  def checkpoint_items(self) -> dict:
    """{name: trackable}: everything a checkpoint must hold to resume or evaluate."""
    ...

  def compute_gradients(
    self, meta_batch: episode_lib.Episode, step
  ) -> tuple[list[tf.Tensor], dict[str, tf.Tensor]]:
    """Meta-gradients for trainable_variables on a meta-batch [T, ...], and scalar
    metrics of the step ({"loss", METRIC}). Leaves trainable_variables unchanged."""
    ...

  def evaluate_tasks(self, meta_batch: episode_lib.Episode, num_steps: int) -> dict[str, tf.Tensor]:
    """Per-task scores of a meta-batch [T, ...] after adapting num_steps inner steps:
    {"loss": [T, S + 1], METRIC: [T, S + 1]} (column s after s steps; learners without
    inner steps give one column), or {"accuracy_by_instance": [T, L]} (online)."""
    ...
