"""tf.data pipelines that turn an episode sampler into a stream of meta-batches."""

from typing import NamedTuple, Optional

import tensorflow as tf

from mann import errors
from mann.data import episode as episode_lib

# Episodes are numbered from 0 upwards without end; 2**62 is "forever" for int64.
_ENDLESS = 2**62


class Shard(NamedTuple):
  """Which slices of every meta-batch one input pipeline makes, when R replicas share
  each meta-batch of T tasks (replica r takes tasks r*T/R .. (r+1)*T/R - 1): those of
  replicas first_replica .. first_replica + num_local_replicas - 1, one dataset element
  per replica and step, in that order (how tf.distribute hands a pipeline's elements to
  its local replicas)."""

  first_replica: int = 0
  num_local_replicas: int = 1
  num_replicas: int = 1


ONE_REPLICA = Shard()


def meta_batches(
  sampler: episode_lib.EpisodeSampler,
  *,
  meta_batch_size: int,
  start_step: int = 0,
  num_steps: Optional[int] = None,
  num_parallel_calls: int = tf.data.AUTOTUNE,
  drop_remainder: bool = True,
  shard: Shard = ONE_REPLICA,
) -> tf.data.Dataset:
  """Meta-batches of T episodes, made in parallel, in a fixed order, prefetched.

  Meta-batch s holds episodes s*T .. s*T + T - 1 of the sampler, so a run resumed
  at step s sees exactly the batches an uninterrupted run would (pass
  start_step=s), and two runs with one sampler seed see the same tasks.

  Args:
    sampler: maps an episode index to an Episode (FewShotSampler, SinusoidSampler).
    meta_batch_size: T, episodes per meta-batch.
    start_step: the first meta-batch to yield.
    num_steps: how many meta-batches to yield; None for an endless stream.
    num_parallel_calls: parallel episode makers (AUTOTUNE: as many as help).
    drop_remainder: with num_steps set, whether a final short batch is dropped.
    shard: the replicas whose slices this pipeline makes (default: the one replica,
      whole meta-batches).

  Returns:
    A tf.data.Dataset of Episode, each field [T, ...] with a static T; with a shard,
    each field [T/R, ...], num_local_replicas elements per meta-batch.
  """
  if meta_batch_size < 1:
    raise errors.UserInputError(f"meta_batch_size must be >= 1, got {meta_batch_size}")
  if start_step < 0 or (num_steps is not None and num_steps < 0):
    raise errors.UserInputError(
      f"start_step ({start_step}) and num_steps ({num_steps}) must be >= 0"
    )
  if shard != ONE_REPLICA:
    return _sharded_meta_batches(
      sampler, meta_batch_size, start_step, num_steps, shard, num_parallel_calls
    )
  first = start_step * meta_batch_size
  last = _ENDLESS if num_steps is None else first + num_steps * meta_batch_size
  return _batched_episodes(
    sampler, first, last, meta_batch_size, drop_remainder, num_parallel_calls
  )


def _sharded_meta_batches(
  sampler, meta_batch_size, start_step, num_steps, shard, num_parallel_calls
) -> tf.data.Dataset:
  """meta_batches' slices for the replicas of `shard` (whole slices only)."""
  if (
    shard.num_replicas < 1
    or meta_batch_size % shard.num_replicas
    or not 0
    <= shard.first_replica
    < shard.first_replica + shard.num_local_replicas
    <= shard.num_replicas
  ):
    raise errors.UserInputError(
      f"cannot split meta-batches of {meta_batch_size} tasks as {shard}: the meta-batch "
      f"size must be a multiple of the replica count"
    )
  per_replica = meta_batch_size // shard.num_replicas
  offset = shard.first_replica * per_replica
  count = shard.num_local_replicas * per_replica
  last_step = _ENDLESS // meta_batch_size if num_steps is None else start_step + num_steps
  # This pipeline's episodes of meta-batch s: s*T + offset .. s*T + offset + count - 1.
  indices = tf.data.Dataset.range(start_step, last_step).flat_map(
    lambda s: tf.data.Dataset.range(
      s * meta_batch_size + offset, s * meta_batch_size + offset + count
    )
  )
  dataset = _map_episodes(indices, sampler, num_parallel_calls)
  return dataset.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def episodes(
  sampler: episode_lib.EpisodeSampler,
  *,
  num_episodes: int,
  first_episode: int = 0,
  batch_size: int = 1,
) -> tf.data.Dataset:
  """A finite, ordered run of episodes first_episode .. first_episode+num_episodes-1,
  batched by batch_size (the last batch may be short): what an evaluation loops over.
  """
  if num_episodes < 1 or batch_size < 1:
    raise errors.UserInputError(
      f"num_episodes ({num_episodes}) and batch_size ({batch_size}) must be >= 1"
    )
  return _batched_episodes(
    sampler, first_episode, first_episode + num_episodes, batch_size, False, tf.data.AUTOTUNE
  )


def _batched_episodes(
  sampler, first, last, batch_size, drop_remainder, num_parallel_calls
) -> tf.data.Dataset:
  """Episodes first..last-1 in order, made in parallel, batched, prefetched."""
  dataset = _map_episodes(tf.data.Dataset.range(first, last), sampler, num_parallel_calls)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _map_episodes(indices: tf.data.Dataset, sampler, num_parallel_calls) -> tf.data.Dataset:
  """The episodes of `indices`, in order. The samplers branch on Python values only, so
  their episode functions are traced as written: AutoGraph's rewriting of them cost a
  few tenths of a second of every binary's start."""
  episode = tf.autograph.experimental.do_not_convert(sampler.episode)
  return indices.map(episode, num_parallel_calls=num_parallel_calls, deterministic=True)
