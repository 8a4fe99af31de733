"""N-way K-shot episodes over a class-indexed image source, as pure TF ops.

Episode `i` of a sampler with seed `s` is a function of (s, i) alone, drawn with
TF's stateless random ops: the same seed gives the same tasks on every run,
different seeds different ones, and tf.data can make episodes in parallel (and a
resumed run can skip to episode i) without changing what is drawn.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from mann import errors
from mann.data import augment
from mann.data import episode as episode_lib
from mann.data import source as source_lib

# Random keys are int32 in [0, 2**30); padding slots get a larger key so that they sort
# last. Integer keys make ties (and so any bias of argsort) vanishingly rare.
_KEY_RANGE = 2**30
_PAD_KEY = 2**31 - 1


class FewShotSampler:
  """Draws N-way K-shot tasks with Q queries per class from one class-indexed source.

  Per task: N classes without replacement, in random order (the i-th drawn class
  gets label i, so labels are a random remapping onto 0..N-1); per class K+Q
  distinct images, the first K the support set, the other Q the query set, so
  support and query never share an image.
  """

  def __init__(
    self,
    source: source_lib.ClassIndexedImages,
    *,
    num_ways: int,
    num_shots: int,
    num_queries: int,
    seed: int,
    class_labels: bool = False,
    shuffle_support: bool = False,
    augmentation: augment.Augmentation = augment.Augmentation(),
    label_space: Optional[int] = None,
  ):
    """Args:
    source: the classes to draw from (one split of a dataset).
    num_ways: N, classes per task.
    num_shots: K, support images per class.
    num_queries: Q, query images per class.
    seed: int, the seed of every draw; pair it with the episode index.
    class_labels: label images with their source class (0..num_classes-1) instead
      of 0..N-1: the supervised labels a transfer baseline pretrains on.
    shuffle_support: give the support set in a random order (a permutation drawn
      from the episode's seed) instead of class by class: for sequence models
      (MANN, LSTM), which read the support one example at a time.
    augmentation: random per-image translation and rotation (training episodes).
    label_space: label the N classes with N distinct integers drawn per episode from
      0..label_space-1 instead of 0..N-1 (Santoro et al.'s string labels:
      label_space 5**5, each integer a 5-character base-5 string).
    """
    if num_ways < 1 or num_shots < 1 or num_queries < 0:
      raise errors.UserInputError(
        f"need num_ways >= 1, num_shots >= 1, num_queries >= 0; got {num_ways}, "
        f"{num_shots}, {num_queries}"
      )
    if num_ways > source.num_classes:
      raise errors.UserInputError(
        f"num_ways={num_ways} exceeds the {source.num_classes} classes of this split; "
        f"use at most {source.num_classes} ways"
      )
    counts = source.class_counts()
    per_class = num_shots + num_queries
    if counts.min() < per_class:
      raise errors.UserInputError(
        f"num_shots + num_queries = {per_class} exceeds the {counts.min()} images of "
        f"the smallest class; lower num_shots or num_queries"
      )
    self.num_ways = num_ways
    self.num_shots = num_shots
    self.num_queries = num_queries
    self.seed = seed
    self.class_labels = class_labels
    self.shuffle_support = shuffle_support
    self.augmentation = augmentation
    if label_space is not None and label_space < num_ways:
      raise errors.UserInputError(
        f"label_space={label_space} has fewer labels than num_ways={num_ways}"
      )
    self.label_space = label_space
    self.source = source
    self._num_classes = source.num_classes
    self._images = tf.constant(source.images)
    self._class_table = tf.constant(source.class_table())
    self._class_counts = tf.constant(counts.astype(np.int32))
    self._uniform_counts = bool((counts == counts[0]).all())

  @property
  def element_spec(self) -> episode_lib.Episode:
    shape = self.source.image_shape
    n, k, q = self.num_ways, self.num_shots, self.num_queries
    return episode_lib.Episode(
      support_x=tf.TensorSpec([n * k, *shape], tf.float32),
      support_y=tf.TensorSpec([n * k], tf.int32),
      query_x=tf.TensorSpec([n * q, *shape], tf.float32),
      query_y=tf.TensorSpec([n * q], tf.int32),
    )

  def _episode_seed(self, index) -> tf.Tensor:
    """The stateless seed [2] of episode `index`: (sampler seed, index)."""
    return tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])

  def episode_image_indices(self, index) -> tuple[tf.Tensor, tf.Tensor]:
    """The source rows of the images of episode `index`.

    Args:
      index: int scalar, the episode number.

    Returns:
      classes: int32 [N], the source class of labels 0..N-1.
      image_indices: int32 [N, K+Q], row i holds the images of label i, support first.
    """
    class_seed, image_seed = tf.unstack(
      tf.random.experimental.stateless_split(self._episode_seed(index), num=2)
    )
    class_keys = tf.random.stateless_uniform(
      [self._num_classes], class_seed, minval=0, maxval=_KEY_RANGE, dtype=tf.int32
    )
    classes = tf.argsort(class_keys, stable=True)[: self.num_ways]
    table = tf.gather(self._class_table, classes)  # [N, max_count]
    image_keys = tf.random.stateless_uniform(
      tf.shape(table), image_seed, minval=0, maxval=_KEY_RANGE, dtype=tf.int32
    )
    if not self._uniform_counts:
      valid = (
        tf.range(tf.shape(table)[1])[None, :] < tf.gather(self._class_counts, classes)[:, None]
      )
      image_keys = tf.where(valid, image_keys, _PAD_KEY)
    picked = tf.argsort(image_keys, axis=1, stable=True)[:, : self.num_shots + self.num_queries]
    return classes, tf.gather(table, picked, batch_dims=1)

  def episode(self, index) -> episode_lib.Episode:
    """Episode number `index`, images as float32 in [0, 1] (see Episode for shapes)."""
    classes, image_indices = self.episode_image_indices(index)
    support_idx = tf.reshape(image_indices[:, : self.num_shots], [-1])
    query_idx = tf.reshape(image_indices[:, self.num_shots :], [-1])
    # Further draws are folded into the episode's seed, not split off it, so that the
    # draws of episode_image_indices stay those of every run without these options.
    episode_seed = self._episode_seed(index)
    fold = lambda key: tf.random.experimental.stateless_fold_in(episode_seed, key)
    labels = classes if self.class_labels else tf.range(self.num_ways, dtype=tf.int32)
    if self.label_space is not None:
      labels = tf.argsort(tf.random.stateless_uniform([self.label_space], fold(4)))[: self.num_ways]

    def images(idx):
      # A multiply, not a divide: graph mode rewrites x / 255 as x * (1 / 255), and the
      # two differ in the last bit; one form keeps eager and compiled episodes equal.
      return tf.cast(tf.gather(self._images, idx), tf.float32) * (1.0 / 255.0)

    support_y = tf.repeat(labels, self.num_shots)
    if self.shuffle_support:
      order = tf.argsort(tf.random.stateless_uniform([self.num_ways * self.num_shots], fold(1)))
      support_idx, support_y = tf.gather(support_idx, order), tf.gather(support_y, order)
    support_x, query_x = images(support_idx), images(query_idx)
    if self.augmentation.active:
      support_x = augment.random_transform(support_x, self.augmentation, fold(2))
      query_x = augment.random_transform(query_x, self.augmentation, fold(3))
    return episode_lib.Episode(
      support_x=support_x,
      support_y=support_y,
      query_x=query_x,
      query_y=tf.repeat(labels, self.num_queries),
    )
