"""Inputs the step benchmarks share (TensorFlow imported on use: step_time's parent
process, which only starts the timed ones, never imports it)."""


def random_meta_batch(ways, shots, queries, tasks):
  """An Omniglot-shaped meta-batch of uniform noise, labels class by class (a step's
  cost does not depend on pixel values): an Episode of [tasks, ...] tensors."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann.data import episode as episode_lib  # pylint: disable=g-import-not-at-top

  return episode_lib.Episode(
    support_x=tf.random.uniform([tasks, ways * shots, 28, 28, 1]),
    support_y=tf.tile(tf.repeat(tf.range(ways), shots)[None], [tasks, 1]),
    query_x=tf.random.uniform([tasks, ways * queries, 28, 28, 1]),
    query_y=tf.tile(tf.repeat(tf.range(ways), queries)[None], [tasks, 1]),
  )
