"""Compiled meta-steps under a tf.distribute strategy, and the meta-batches they read."""

from typing import Callable, Optional

import keras
import tensorflow as tf

from mann.data import pipeline
from mann.meta import learner as learner_lib
from mann.meta import task_chunks
from mann.training import checkpointing


def replica_batches(
  strategy: tf.distribute.Strategy,
  make_batches: Callable[[int, pipeline.Shard], tf.data.Dataset],
  first_step: int,
) -> tuple[tf.distribute.DistributedIterator, object]:
  """The replicas' meta-batches from `first_step` on: (an iterator giving each replica
  its shard of every meta-batch, the element spec of a replica's shard with static
  shapes, which a cluster's distributed iterator loses)."""
  specs = []

  def pipeline_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
    local = context.num_replicas_in_sync // context.num_input_pipelines
    dataset = make_batches(
      first_step,
      pipeline.Shard(
        first_replica=context.input_pipeline_id * local,
        num_local_replicas=local,
        num_replicas=context.num_replicas_in_sync,
      ),
    )
    specs.append(dataset.element_spec)
    return dataset

  iterator = iter(strategy.distribute_datasets_from_function(pipeline_batches))
  return iterator, specs[0]


class MetaSteps:
  """`run(iterator, start, count)`: `count` meta-steps in one compiled call.

  A meta-step: each replica computes the meta-gradients of its T/R tasks (tasks_per_chunk
  of them at a time, if set), the replicas' means are averaged, clipped to
  clip_grad_norm, checked for finiteness (loss, every gradient and every state variable
  the step wrote, on every replica) and applied by the optimiser unless not finite. A
  step that is not finite leaves every variable as it was: the state it wrote (batch-norm
  statistics) goes back to its values from before the step.
  """

  def __init__(
    self,
    *,
    learner: learner_lib.MetaLearner,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    replica_spec,
    clip_grad_norm: Optional[float] = None,
    skip_nonfinite: bool = False,
    steps_per_call: int = 1,
    jit_compile: bool = False,
    tasks_per_chunk: int = 0,
  ):
    """replica_spec: a replica's meta-batch, static shapes (replica_batches' second
    value); the other arguments as mann.training.train's."""
    task_chunks.check_tasks_per_chunk(
      learner, tf.nest.flatten(replica_spec)[0].shape[0], tasks_per_chunk
    )
    self._tasks_per_chunk = tasks_per_chunk
    self._learner = learner
    self._optimizer = optimizer
    self._variables = learner.trainable_variables
    self._state = checkpointing.state_variables(learner)
    self._strategy = strategy
    self._replica_spec = replica_spec
    self._clip_grad_norm = clip_grad_norm
    self._skip_nonfinite = skip_nonfinite
    self._steps_per_call = steps_per_call
    compile_step = (lambda f: tf.function(f, jit_compile=True)) if jit_compile else (lambda f: f)
    self._meta_step, self._gradients_step, self._apply_step = map(
      compile_step, (self._replica_meta_step, self._replica_gradients, self._replica_apply)
    )
    # Traced as written (no AutoGraph): every loop and branch here is explicit, and
    # AutoGraph's rewriting of these methods was a third of a binary's first call.
    self.run = tf.function(self._run, autograph=False)

  def _replica_gradients(self, meta_batch, step):
    """A replica's part of a meta-step: (the meta-batch's meta-gradients, clipped;
    metrics; 1.0 if a loss or meta-gradient on any replica was non-finite else 0.0).
    Every replica returns the same gradients and flag."""
    meta_batch = tf.nest.map_structure(
      lambda x, spec: tf.ensure_shape(x, spec.shape), meta_batch, self._replica_spec
    )
    # Read before the step writes them (ops on one variable run in program order).
    state_before = [tf.identity(v) for v in self._state]
    gradients, metrics = task_chunks.compute_gradients(
      self._learner, meta_batch, step, tasks_per_chunk=self._tasks_per_chunk
    )
    context = tf.distribute.get_replica_context()
    if context.num_replicas_in_sync > 1:  # each replica's gradient: the mean of its T/R
      gradients = context.all_reduce(tf.distribute.ReduceOp.MEAN, gradients)
    if self._clip_grad_norm:
      gradients, _ = tf.clip_by_global_norm(gradients, self._clip_grad_norm)
    state_after = [tf.convert_to_tensor(v) for v in self._state]
    finite = tf.reduce_all(
      [tf.reduce_all(tf.math.is_finite(g)) for g in gradients]
      + [tf.reduce_all(tf.math.is_finite(metrics["loss"]))]
      + [tf.reduce_all(tf.math.is_finite(v)) for v in state_after if v.dtype.is_floating]
    )
    nonfinite = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
    nonfinite = tf.minimum(nonfinite, 1.0)
    # An assignment either way, not a branch: a replica cannot update inside control flow.
    for variable, before, after in zip(self._state, state_before, state_after):
      variable.assign(tf.where(nonfinite > 0, before, after))
    return gradients, metrics, nonfinite

  def _replica_apply(self, gradients):
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    # Keras sums the replicas' gradients: 1/R of the mean from each sums to the mean.
    self._optimizer.apply(
      [g / replicas for g in gradients] if replicas > 1 else gradients, self._variables
    )
    return tf.constant(True)

  def _replica_meta_step(self, meta_batch, step):
    """One meta-step on one replica; a non-finite one skips its update."""
    gradients, metrics, nonfinite = self._replica_gradients(meta_batch, step)
    tf.cond(nonfinite == 0, lambda: self._replica_apply(gradients), lambda: tf.constant(False))
    return metrics, nonfinite

  def _mean(self, value):
    return self._strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

  def _step(self, meta_batch, step):
    """One meta-step on every replica: (the replicas' mean metrics, 1.0 if skipped)."""
    strategy = self._strategy
    if strategy.num_replicas_in_sync == 1:
      metrics, nonfinite = strategy.run(self._meta_step, args=(meta_batch, step))
    else:
      # An update inside control flow in a replica cannot synchronise the replicas
      # (tf.distribute refuses it), so the skip decision is taken across them.
      gradients, metrics, nonfinite = strategy.run(self._gradients_step, args=(meta_batch, step))
      tf.cond(
        self._mean(nonfinite) == 0,
        lambda: strategy.experimental_local_results(
          strategy.run(self._apply_step, args=(gradients,))
        )[0],
        lambda: tf.constant(False),
      )
    return {k: self._mean(v) for k, v in metrics.items()}, self._mean(nonfinite)

  @staticmethod
  def _finite_part(metrics, nonfinite):
    """A non-finite step's metrics count as zeros: means are over the finite steps."""
    return {k: tf.where(nonfinite > 0, tf.zeros_like(v), v) for k, v in metrics.items()}

  def _run(self, iterator, start, count):
    """`count` meta-steps from `start` (fewer: stopped at a non-finite one, without
    skip_nonfinite). Returns the mean of each metric over the finite steps, the
    number of non-finite steps, and the 0-based index of the first (-1: none)."""
    metrics, nonfinite = self._step(next(iterator), start)
    totals = self._finite_part(metrics, nonfinite)
    bad_steps = nonfinite
    first_bad = tf.where(nonfinite > 0, start, tf.constant(-1, tf.int64))
    steps_run = tf.constant(1, tf.int64)
    if self._steps_per_call > 1:  # one step outside the loop fixes the metrics' structure

      def more(steps_run, totals, bad_steps, first_bad):
        del totals, first_bad
        keep_going = steps_run < count
        return keep_going if self._skip_nonfinite else keep_going & (bad_steps == 0)

      def body(steps_run, totals, bad_steps, first_bad):
        metrics, nonfinite = self._step(next(iterator), start + steps_run)
        totals = tf.nest.map_structure(tf.add, totals, self._finite_part(metrics, nonfinite))
        first_bad = tf.where((first_bad < 0) & (nonfinite > 0), start + steps_run, first_bad)
        return steps_run + 1, totals, bad_steps + nonfinite, first_bad

      steps_run, totals, bad_steps, first_bad = tf.while_loop(
        more, body, (steps_run, totals, bad_steps, first_bad)
      )
    finite_steps = tf.maximum(tf.cast(steps_run, tf.float32) - bad_steps, 1.0)
    return (
      {k: v / tf.cast(finite_steps, v.dtype) for k, v in totals.items()},
      bad_steps,
      first_bad,
    )
