"""Tests of mann/data/augment.py against hand-shifted and hand-rotated images."""

import numpy as np
import tensorflow as tf

from mann.data import augment


def _images(seed=0, shape=(3, 9, 9, 1)):
  return tf.constant(np.random.default_rng(seed).uniform(size=shape), tf.float32)


def test_whole_pixel_shifts_move_the_content_and_fill_with_background():
  images = _images()
  shifted = augment.transform(images, tf.constant([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0]]),
                              tf.zeros([3])).numpy()
  want = np.zeros_like(images.numpy())
  want[0, :, 2:] = images[0, :, :-2]  # right by 2
  want[1, :-1] = images[1, 1:]  # up by 1
  want[2] = images[2]  # untouched
  np.testing.assert_allclose(shifted, want, atol=1e-6)


def test_quarter_turn_is_rot90_counter_clockwise():
  images = _images(1)
  turned = augment.transform(images, tf.zeros([3, 2]), tf.fill([3], np.pi / 2)).numpy()
  np.testing.assert_allclose(turned, np.rot90(images.numpy(), k=1, axes=(1, 2)), atol=1e-5)


def test_random_transform_is_seeded_bounded_and_off_by_default():
  images = _images(2, (50, 9, 9, 1))
  assert augment.random_transform(images, augment.Augmentation(), tf.constant([1, 2])) is images
  augmentation = augment.Augmentation(max_shift=2, max_degrees=10.0)
  one = augment.random_transform(images, augmentation, tf.constant([1, 2]))
  np.testing.assert_array_equal(one, augment.random_transform(images, augmentation,
                                                               tf.constant([1, 2])))
  assert not np.allclose(one, augment.random_transform(images, augmentation,
                                                      tf.constant([1, 3])))
  # Shifts only: each image is its original moved by whole pixels within +-2.
  shifts_only = augment.random_transform(images, augment.Augmentation(max_shift=2),
                                         tf.constant([4, 5])).numpy()
  seen = set()
  for original, moved in zip(images.numpy(), shifts_only):
    matches = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
               if np.allclose(moved, augment.transform(original[None],
                                                       tf.constant([[dx, dy]], tf.float32),
                                                       tf.zeros([1]))[0], atol=1e-6)]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) > 10  # the 25 shifts are all drawn
