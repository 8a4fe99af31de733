"""Episodes as sequences, the protocol of Santoro et al. 2016 (MANN).

An episode is N classes x L instances (10 in the paper) shown one at a time in random
order; the label of step t is given as input at step t+1, so the network must
predict each image's label before it sees it, and can only be right from the 2nd
instance of a class on by remembering the 1st.
"""

import tensorflow as tf

from mann.data import augment
from mann.data import episode as episode_lib
from mann.data import labels as labels_lib
from mann.data import sampler as sampler_lib
from mann.data import source as source_lib


class SequenceSampler:
  """Santoro sequences: support_x [N*L, H, W, C] and support_y [N*L] in random order;
  the query set is empty (every step is both a question and, one step later, a lesson).
  """

  def __init__(
    self,
    source: source_lib.ClassIndexedImages,
    *,
    num_ways: int,
    num_instances: int,
    seed: int,
    augmentation: augment.Augmentation = augment.Augmentation(),
    string_labels: bool = False,
  ):
    """Args:
    source: the classes to draw from.
    num_ways: N, classes per episode (labels 0..N-1, a random remapping).
    num_instances: L, images per class (10 in the paper).
    seed: the seed of every draw; episode i is a function of (seed, i).
    augmentation: random per-image translation and rotation (training sequences).
    string_labels: label the classes with random 5-character strings (integers in
      [0, 3125), see labels.string_characters) instead of 0..N-1.
    """
    # A sequence is a task's support set, shuffled, with no queries.
    self._tasks = sampler_lib.FewShotSampler(
      source,
      num_ways=num_ways,
      num_shots=num_instances,
      num_queries=0,
      seed=seed,
      shuffle_support=True,
      augmentation=augmentation,
      label_space=labels_lib.label_space(string_labels),
    )
    self.num_ways = num_ways
    self.num_instances = num_instances
    self.seed = seed
    self.source = source

  @property
  def element_spec(self) -> episode_lib.Episode:
    return self._tasks.element_spec

  def episode(self, index) -> episode_lib.Episode:
    """The sequence of episode `index`: the N x L images of a task, shuffled."""
    return self._tasks.episode(index)

  def episode_image_indices(self, index) -> tuple[tf.Tensor, tf.Tensor]:
    """classes int32 [N] and the source rows int32 [N, L] of episode `index`'s images,
    before the shuffle (what evaluation.tasks_digest hashes)."""
    return self._tasks.episode_image_indices(index)


def previous_label_inputs(
  labels: tf.Tensor, num_classes: int, string_labels: bool = False
) -> tf.Tensor:
  """The label of step t-1 at step t, zeros at step 0 (the paper's offset).

  Args:
    labels: int [..., T].
    num_classes: N.
    string_labels: labels are strings (see labels.label_vectors).

  Returns:
    float32 [..., T, N] (one-hot), or [..., T, 25] with string labels.
  """
  vectors = labels_lib.label_vectors(labels, num_classes, string_labels)
  return tf.concat([tf.zeros_like(vectors[..., :1, :]), vectors[..., :-1, :]], axis=-2)


def instance_numbers(labels: tf.Tensor) -> tf.Tensor:
  """For each step, how many times its class has been shown so far, itself included
  (1 = first presentation): the x axis of the paper's accuracy-by-instance table.

  Args:
    labels: int [T] or [B, T].

  Returns:
    int32 of the same shape.
  """
  same = tf.cast(tf.equal(labels[..., :, None], labels[..., None, :]), tf.int32)
  upto = tf.linalg.band_part(tf.ones_like(same), -1, 0)  # [t, s] = 1 where s <= t
  return tf.reduce_sum(same * upto, axis=-1)
