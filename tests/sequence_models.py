"""Tiny sequence models and few-shot image tasks for the tests of learners over them."""

import keras
import numpy as np
import tensorflow as tf

from mann import models
from mann.data import episode as episode_lib

NUM_WAYS = 3


def tiny_sequence_model(
  kind: str = "mann",
  *,
  encoder: bool = False,
  seed: int = 0,
  image_shape=(4, 4, 1),
  key_strength: bool = True,
  reads_only_output: bool = False,
) -> keras.Model:
  """A MANN (controller 3 units, memory 4 x 2, 2 reads) or an LSTM (3 units) over 3-way
  sequences of image_shape images, with a conv4 encoder of one filter when asked, in
  keras.config.floatx()."""
  keras.utils.set_random_seed(seed)
  input_size = int(np.prod(image_shape)) + NUM_WAYS
  features = models.conv4_features(image_shape=image_shape, num_filters=1) if encoder else None
  if kind == "mann":
    return models.mann(
      num_classes=NUM_WAYS,
      input_size=input_size,
      controller_units=3,
      memory_size=4,
      word_size=2,
      num_reads=2,
      key_strength=key_strength,
      reads_only_output=reads_only_output,
      encoder=features,
      image_shape=image_shape,
    )
  return models.lstm(
    num_classes=NUM_WAYS, input_size=input_size, units=3, encoder=features, image_shape=image_shape
  )


def image_tasks(
  *,
  num_tasks: int = 2,
  num_shots: int = 1,
  num_queries: int = 1,
  image_shape=(4, 4, 1),
  seed: int = 0,
  dtype=None,
) -> episode_lib.Episode:
  """Random 3-way tasks [T, ...]: support in a shuffled order (as a sequence model's
  sampler gives it), queries class-major."""
  rng = np.random.default_rng(seed)
  dtype = dtype or keras.config.floatx()
  support_y = np.stack(
    [rng.permutation(np.repeat(np.arange(NUM_WAYS), num_shots)) for _ in range(num_tasks)]
  )
  query_y = np.tile(np.repeat(np.arange(NUM_WAYS), num_queries), (num_tasks, 1))
  return episode_lib.Episode(
    support_x=tf.constant(rng.random((num_tasks, NUM_WAYS * num_shots, *image_shape)), dtype),
    support_y=tf.constant(support_y, tf.int32),
    query_x=tf.constant(rng.random((num_tasks, NUM_WAYS * num_queries, *image_shape)), dtype),
    query_y=tf.constant(query_y, tf.int32),
  )
