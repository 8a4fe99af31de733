"""Tests of mann/data/sampler.py against the ids written into each test image."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from mann import errors
from mann.data import sampler as sampler_lib
from mann.data import source as source_lib


def _labelled_source(counts):
  """Class c has counts[c] images; pixel [0, 0] holds the class, pixels [0, 1] and
  [1, 0] the image's row number (high and low byte), so an episode tells its origin."""
  labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
  rows = np.arange(len(labels))
  images = np.zeros((len(labels), 2, 2, 1), np.uint8)
  images[:, 0, 0, 0] = labels
  images[:, 0, 1, 0] = rows // 256
  images[:, 1, 0, 0] = rows % 256
  return source_lib.ClassIndexedImages(
    images=images,
    labels=labels,
    class_names=tuple(map(str, range(len(counts)))),
    base_class_ids=np.arange(len(counts), dtype=np.int32),
  )


def _decode(images):
  """(class, row) of each image of a float [B, 2, 2, 1] batch in [0, 1]."""
  pixels = np.rint(np.asarray(images) * 255).astype(np.int64)
  return pixels[:, 0, 0, 0], pixels[:, 0, 1, 0] * 256 + pixels[:, 1, 0, 0]


def _check_episode(episode, num_ways, num_shots, num_queries):
  support_class, support_row = _decode(episode.support_x)
  query_class, query_row = _decode(episode.query_x)
  support_y, query_y = np.asarray(episode.support_y), np.asarray(episode.query_y)
  # Labels 0..N-1, K support and Q query items each, class-major.
  np.testing.assert_array_equal(support_y, np.repeat(np.arange(num_ways), num_shots))
  np.testing.assert_array_equal(query_y, np.repeat(np.arange(num_ways), num_queries))
  # One source class per label, the same in support and query, none repeated.
  label_to_class = {}
  for label, cls in zip(
    np.concatenate([support_y, query_y]), np.concatenate([support_class, query_class])
  ):
    assert label_to_class.setdefault(label, cls) == cls
  assert len(set(label_to_class.values())) == num_ways
  # Support and query never share an image; no image twice.
  all_rows = np.concatenate([support_row, query_row])
  assert len(np.unique(all_rows)) == len(all_rows)
  return [label_to_class[label] for label in range(num_ways)]


@pytest.mark.parametrize("num_ways,num_shots,num_queries", [(5, 1, 15), (20, 5, 5), (3, 2, 0)])
def test_episode_structure(num_ways, num_shots, num_queries):
  source = _labelled_source([20] * 30)
  sampler = sampler_lib.FewShotSampler(
    source, num_ways=num_ways, num_shots=num_shots, num_queries=num_queries, seed=3
  )
  for index in range(20):
    episode = sampler.episode(index)
    assert episode.support_x.shape == (num_ways * num_shots, 2, 2, 1)
    assert episode.query_x.shape == (num_ways * num_queries, 2, 2, 1)
    _check_episode(episode, num_ways, num_shots, num_queries)


def test_uneven_classes_never_draw_padding():
  # Class sizes 6..29: the padded slots of the class table must never be drawn.
  source = _labelled_source(list(range(6, 30)))
  sampler = sampler_lib.FewShotSampler(source, num_ways=10, num_shots=3, num_queries=3, seed=0)
  for index in range(50):
    episode = sampler.episode(index)
    _check_episode(episode, 10, 3, 3)
    for images in (episode.support_x, episode.query_x):
      cls, row = _decode(images)
      np.testing.assert_array_equal(source.labels[row], cls)


def test_same_seed_same_tasks_other_seed_other_tasks():
  source = _labelled_source([20] * 50)
  make = lambda seed: sampler_lib.FewShotSampler(
    source, num_ways=5, num_shots=1, num_queries=5, seed=seed
  )
  first, again, other = make(1), make(1), make(2)
  for index in range(5):
    for a, b in zip(first.episode(index), again.episode(index)):
      np.testing.assert_array_equal(a, b)
  differs = [
    not np.array_equal(first.episode(i).support_x, other.episode(i).support_x) for i in range(5)
  ]
  assert all(differs)
  # Episodes of one seed differ from each other too.
  assert not np.array_equal(first.episode(0).support_x, first.episode(1).support_x)


def test_eager_and_compiled_episodes_agree():
  sampler = sampler_lib.FewShotSampler(
    _labelled_source([20] * 40), num_ways=5, num_shots=2, num_queries=3, seed=9
  )
  compiled = tf.function(sampler.episode, jit_compile=False)
  for index in (0, 7, 123456789):
    for eager_field, compiled_field in zip(
      sampler.episode(index), compiled(tf.constant(index, tf.int64))
    ):
      np.testing.assert_array_equal(eager_field, compiled_field)


def test_classes_and_images_drawn_uniformly():
  # 10 classes x 4 images, 2-way 1-shot 1-query, 4000 tasks: each class is drawn
  # 800 times in expectation (std ~25), each image of a class as support 1/4 of them.
  source = _labelled_source([4] * 10)
  sampler = sampler_lib.FewShotSampler(source, num_ways=2, num_shots=1, num_queries=1, seed=0)
  batch = tf.function(lambda i: tf.vectorized_map(sampler.episode_image_indices, i))
  classes, images = batch(tf.range(4000, dtype=tf.int64))
  class_counts = np.bincount(np.asarray(classes).ravel(), minlength=10)
  assert np.all(np.abs(class_counts - 800) < 6 * np.sqrt(800 * 0.8))
  support_counts = collections.Counter(np.asarray(images)[:, :, 0].ravel().tolist())
  assert len(support_counts) == 40
  assert all(abs(c - 200) < 6 * np.sqrt(200 * 0.75) for c in support_counts.values())


def test_bad_sizes_raise_clear_errors():
  source = _labelled_source([20] * 4)
  with pytest.raises(errors.UserInputError, match="exceeds the 4 classes"):
    sampler_lib.FewShotSampler(source, num_ways=5, num_shots=1, num_queries=1, seed=0)
  with pytest.raises(errors.UserInputError, match="exceeds the 20 images"):
    sampler_lib.FewShotSampler(source, num_ways=2, num_shots=5, num_queries=16, seed=0)


def test_class_labels_are_the_source_classes():
  source = _labelled_source([20] * 30)
  sampler = sampler_lib.FewShotSampler(
    source, num_ways=5, num_shots=2, num_queries=3, seed=4, class_labels=True
  )
  for index in range(5):
    episode = sampler.episode(index)
    for images, labels in (
      (episode.support_x, episode.support_y),
      (episode.query_x, episode.query_y),
    ):
      classes, _ = _decode(images)
      np.testing.assert_array_equal(np.asarray(labels), classes)


def test_shuffled_support_is_the_same_episode_in_a_random_order():
  source = _labelled_source([6] * 10)
  common = dict(num_ways=4, num_shots=3, num_queries=2, seed=5)
  plain = sampler_lib.FewShotSampler(source, **common)
  shuffled = sampler_lib.FewShotSampler(source, **common, shuffle_support=True)
  orders = set()
  for index in range(20):
    a, b = plain.episode(index), shuffled.episode(index)
    # Same query set, same support (image, label) pairs, in another order.
    np.testing.assert_array_equal(a.query_x, b.query_x)
    np.testing.assert_array_equal(a.query_y, b.query_y)
    pairs = lambda e: sorted(zip(_decode(e.support_x)[1], np.asarray(e.support_y)))
    assert pairs(a) == pairs(b)
    orders.add(tuple(np.asarray(b.support_y)))
    np.testing.assert_array_equal(b.support_y, shuffled.episode(index).support_y)  # seeded
  assert len(orders) > 15  # a fresh order per episode, not class by class


def test_augmented_episodes_keep_labels_and_move_pixels():
  source = source_lib.ClassIndexedImages(
    images=np.random.default_rng(0).integers(0, 255, (40, 6, 6, 1), dtype=np.uint8),
    labels=np.repeat(np.arange(8), 5).astype(np.int32),
    class_names=tuple(map(str, range(8))),
    base_class_ids=np.arange(8, dtype=np.int32),
  )
  common = dict(num_ways=3, num_shots=2, num_queries=2, seed=1)
  plain = sampler_lib.FewShotSampler(source, **common).episode(4)
  moved = sampler_lib.FewShotSampler(
    source, **common, augmentation=sampler_lib.augment.Augmentation(max_shift=1)
  ).episode(4)
  np.testing.assert_array_equal(plain.support_y, moved.support_y)
  np.testing.assert_array_equal(plain.query_y, moved.query_y)
  assert not np.allclose(plain.support_x, moved.support_x)
  # Every augmented image is its plain counterpart shifted by at most one pixel.
  for before, after in zip(
    np.concatenate([plain.support_x, plain.query_x]),
    np.concatenate([moved.support_x, moved.query_x]),
  ):
    assert any(
      np.allclose(
        after,
        sampler_lib.augment.transform(
          before[None], tf.constant([[dx, dy]], tf.float32), tf.zeros([1])
        )[0],
        atol=1e-6,
      )
      for dx in (-1, 0, 1)
      for dy in (-1, 0, 1)
    )
