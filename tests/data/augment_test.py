"""Tests of mann/data/augment.py against hand-shifted, -rotated, -sheared and -scaled images."""

import numpy as np
import pytest
import tensorflow as tf

from mann import errors
from mann.data import augment


def _images(seed=0, shape=(3, 9, 9, 1)):
  return tf.constant(np.random.default_rng(seed).uniform(size=shape), tf.float32)


def test_whole_pixel_shifts_move_the_content_and_fill_with_background():
  images = _images()
  shifted = augment.transform(
    images, tf.constant([[2.0, 0.0], [0.0, -1.0], [0.0, 0.0]]), tf.zeros([3])
  ).numpy()
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
  np.testing.assert_array_equal(
    one, augment.random_transform(images, augmentation, tf.constant([1, 2]))
  )
  assert not np.allclose(one, augment.random_transform(images, augmentation, tf.constant([1, 3])))
  # Shifts only: each image is its original moved by whole pixels within +-2.
  shifts_only = augment.random_transform(
    images, augment.Augmentation(max_shift=2), tf.constant([4, 5])
  ).numpy()
  seen = set()
  for original, moved in zip(images.numpy(), shifts_only):
    matches = [
      (dx, dy)
      for dx in range(-2, 3)
      for dy in range(-2, 3)
      if np.allclose(
        moved,
        augment.transform(original[None], tf.constant([[dx, dy]], tf.float32), tf.zeros([1]))[0],
        atol=1e-6,
      )
    ]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) > 10  # the 25 shifts are all drawn


def test_shear_and_scale_move_each_pixel_where_the_stated_map_sends_it():
  # A point at offset (u, v) from the centre goes to (scale * (u + shear * v), scale * v):
  # with shear 0.5 a pixel 2 rows below the centre moves 1 column right; with scale 2
  # a pixel 1 column right of the centre moves to 2 columns right.
  image = np.zeros((1, 9, 9, 1), np.float32)
  image[0, 4 + 2, 4] = 1.0  # row 6, column 4: v = 2, u = 0
  sheared = augment.transform(
    tf.constant(image), tf.zeros([1, 2]), tf.zeros([1]), shear=0.5
  ).numpy()
  assert sheared[0, 6, 5, 0] == 1.0 and sheared.sum() == 1.0
  image = np.zeros((1, 9, 9, 1), np.float32)
  image[0, 4, 4 + 1] = 1.0  # u = 1, v = 0
  scaled = augment.transform(tf.constant(image), tf.zeros([1, 2]), tf.zeros([1]), scale=2.0).numpy()
  assert scaled[0, 4, 6, 0] == 1.0  # the point itself; bilinear spreads its neighbours
  # A fixed distortion is the same for every image and every seed.
  distortion = augment.parse_distortion("shear=0.5,scale=0.75")
  assert distortion == augment.Augmentation(shear=0.5, scale=0.75) and distortion.active
  images = _images(3)
  one = augment.random_transform(images, distortion, tf.constant([1, 2]))
  np.testing.assert_array_equal(
    one, augment.random_transform(images, distortion, tf.constant([7, 8]))
  )
  np.testing.assert_allclose(
    one,
    augment.transform(images, tf.zeros([3, 2]), tf.zeros([3]), shear=0.5, scale=0.75),
    atol=1e-6,
  )


def test_a_bad_distortion_names_the_flag_and_the_form():
  for spec in ("shear=x", "tilt=1", "scale=0", "shear=1,shear=2"):
    with pytest.raises(errors.UserInputError, match="--eval_transform"):
      augment.parse_distortion(spec)
