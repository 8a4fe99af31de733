"""A meta-batch's meta-gradients computed a chunk of tasks at a time: the same numbers,
a fraction of the memory.

A learner's compute_gradients returns the mean over the tasks of a meta-batch, and a
batched learner (task_mapping="batched") holds every task's activations at once: at
Omniglot's 15 queries per class and 32 tasks that is most of a meta-step's peak memory.
Split into C equal chunks run one after the other (a tf.while_loop of one iteration at
a time), the mean of the chunks' means is the same mean, while only one chunk's
activations are alive at a time.

Metrics are the mean over chunks of each chunk's metrics: exact for task means (loss,
accuracy); a metric over pairs of tasks (task_update_cosine) becomes the mean over
chunks of the within-chunk figure, as it already is across tf.distribute replicas, and
is absent with one task per chunk (no pairs).
"""

from typing import Optional

import tensorflow as tf

from mann.data import episode as episode_lib
from mann.meta import learner as learner_lib


def unsupported_reason(learner: learner_lib.MetaLearner) -> Optional[str]:
  """Why `learner`'s meta-batches cannot be split into chunks, or None.

  A learner allows it by a `not_separable_because` of None (mann.meta.GradientMetaLearner):
  its gradients and metrics are the means over the tasks of each task's own, and nothing
  is updated once per meta-batch. A learner without the attribute is not split.
  """
  return getattr(
    learner,
    "not_separable_because",
    f"{type(learner).__name__}'s meta-gradient is not a mean of per-task gradients",
  )


def check_tasks_per_chunk(
  learner: learner_lib.MetaLearner, num_tasks: int, tasks_per_chunk: int
) -> None:
  """Raises ValueError unless meta-batches of num_tasks tasks can run in chunks of
  tasks_per_chunk (0: not chunked, always allowed)."""
  if tasks_per_chunk < 0:
    raise ValueError(f"tasks_per_chunk must be >= 0 (0: all tasks at once), got {tasks_per_chunk}")
  if tasks_per_chunk == 0:
    return
  if num_tasks % tasks_per_chunk:
    raise ValueError(
      f"tasks_per_chunk={tasks_per_chunk} does not divide the {num_tasks} tasks a "
      "replica computes per meta-step; pick a divisor of it"
    )
  if tasks_per_chunk == num_tasks:
    return
  reason = unsupported_reason(learner)
  if reason is not None:
    raise ValueError(f"tasks_per_chunk cannot split this learner's meta-batches: {reason}")


def compute_gradients(
  learner: learner_lib.MetaLearner,
  meta_batch: episode_lib.Episode,
  step,
  *,
  tasks_per_chunk: int,
) -> tuple[list[tf.Tensor], dict[str, tf.Tensor]]:
  """learner.compute_gradients(meta_batch, step), `tasks_per_chunk` tasks at a time.

  Args:
    learner: any MetaLearner whose gradients and metrics are means over the tasks.
    meta_batch: a meta-batch with a leading task axis [T, ...] of static size T.
    step: the meta-step, passed to every chunk.
    tasks_per_chunk: tasks per chunk, a divisor of T; 0 or T: all at once.

  Returns:
    (gradients, metrics) as learner.compute_gradients: the mean over the C = T /
    tasks_per_chunk chunks of each chunk's (gradients, metrics).
  """
  num_tasks = tf.nest.flatten(meta_batch)[0].shape[0]
  check_tasks_per_chunk(learner, num_tasks, tasks_per_chunk)
  if tasks_per_chunk in (0, num_tasks):
    return learner.compute_gradients(meta_batch, step)
  num_chunks = num_tasks // tasks_per_chunk
  chunks = tf.nest.map_structure(
    lambda x: tf.reshape(x, [num_chunks, tasks_per_chunk, *x.shape[1:]]), meta_batch
  )
  chunk = lambda i: tf.nest.map_structure(lambda x: tf.gather(x, i), chunks)
  # The first chunk outside the loop fixes the metrics' structure; the loop starts only
  # once it is done (its counter waits on it), so two chunks are never alive at once.
  gradients, metrics = learner.compute_gradients(chunk(0), step)
  with tf.control_dependencies(gradients + list(metrics.values())):
    first = tf.identity(tf.constant(1, tf.int32))

  def body(i, gradients, metrics):
    chunk_gradients, chunk_metrics = learner.compute_gradients(chunk(i), step)
    return (
      i + 1,
      [a + b for a, b in zip(gradients, chunk_gradients)],
      {k: metrics[k] + chunk_metrics[k] for k in metrics},
    )

  _, gradients, metrics = tf.while_loop(
    lambda i, *_: i < num_chunks,
    body,
    (first, gradients, metrics),
    parallel_iterations=1,
    maximum_iterations=num_chunks - 1,
  )
  return (
    [g / num_chunks for g in gradients],
    {k: v / tf.cast(num_chunks, v.dtype) for k, v in metrics.items()},
  )
