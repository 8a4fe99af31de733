"""Tests of mann/data/source.py: class splits, rotations, subsets, class tables."""

import numpy as np
import pytest

from mann import errors
from mann.data import source as source_lib


def _toy_source(num_classes=4, per_class=3, size=2):
  """Image i is filled with the value i; class of image i is i // per_class."""
  num_images = num_classes * per_class
  images = np.broadcast_to(
    np.arange(num_images, dtype=np.uint8)[:, None, None, None], (num_images, size, size, 1)
  ).copy()
  return source_lib.ClassIndexedImages(
    images=images,
    labels=np.repeat(np.arange(num_classes), per_class).astype(np.int32),
    class_names=tuple(f"c{i}" for i in range(num_classes)),
    base_class_ids=np.arange(num_classes, dtype=np.int32) + 100,
  )


def test_split_classes_disjoint_cover_and_sized():
  groups = source_lib.split_classes(1623, split_sizes=(1100, 100, 423), seed=0)
  assert [len(g) for g in groups] == [1100, 100, 423]
  union = np.concatenate(groups)
  assert len(np.unique(union)) == 1623
  np.testing.assert_array_equal(np.sort(union), np.arange(1623))


def test_split_classes_depends_on_seed_only():
  first = source_lib.split_classes(1623, split_sizes=(1100, 100, 423), seed=7)
  again = source_lib.split_classes(1623, split_sizes=(1100, 100, 423), seed=7)
  other = source_lib.split_classes(1623, split_sizes=(1100, 100, 423), seed=8)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[2], other[2])


def test_split_classes_rejects_sizes_that_do_not_add_up():
  with pytest.raises(errors.UserInputError, match="add up to the 10 classes"):
    source_lib.split_classes(10, split_sizes=(5, 4), seed=0)


def test_split_sizes_from_fractions():
  assert source_lib.split_sizes_from_fractions(100, (0.6, 0.2, 0.2)) == (60, 20, 20)
  assert source_lib.split_sizes_from_fractions(10, (0.64, 0.16, 0.2)) == (6, 2, 2)
  with pytest.raises(errors.UserInputError, match="add up to 1"):
    source_lib.split_sizes_from_fractions(10, (0.5, 0.2))


def test_class_table_lists_each_class_images_padded():
  source = source_lib.ClassIndexedImages(
    images=np.zeros((5, 1, 1, 1), np.uint8),
    labels=np.array([1, 0, 1, 2, 1], np.int32),
    class_names=("a", "b", "c"),
    base_class_ids=np.arange(3, dtype=np.int32),
  )
  np.testing.assert_array_equal(source.class_counts(), [1, 3, 1])
  np.testing.assert_array_equal(source.class_table(), [[1, -1, -1], [0, 2, 4], [3, -1, -1]])


def test_subset_relabels_in_given_order():
  source = _toy_source()
  subset = source.subset([2, 0])
  assert subset.class_names == ("c2", "c0")
  np.testing.assert_array_equal(subset.base_class_ids, [102, 100])
  # Class 2 held images 6, 7, 8 and class 0 images 0, 1, 2 (pixel value = image number).
  values = subset.images[:, 0, 0, 0]
  np.testing.assert_array_equal(np.sort(values[subset.labels == 0]), [6, 7, 8])
  np.testing.assert_array_equal(np.sort(values[subset.labels == 1]), [0, 1, 2])


def test_with_rotations_makes_each_turn_a_class():
  image = np.array([[1, 2], [3, 4]], np.uint8)[None, :, :, None]
  source = source_lib.ClassIndexedImages(
    images=image,
    labels=np.array([0], np.int32),
    class_names=("x",),
    base_class_ids=np.array([42], np.int32),
  )
  rotated = source_lib.with_rotations(source)
  assert rotated.num_classes == 4
  assert rotated.class_names == ("x/rot0", "x/rot90", "x/rot180", "x/rot270")
  np.testing.assert_array_equal(rotated.base_class_ids, [42, 42, 42, 42])
  # Counter-clockwise quarter turns of [[1, 2], [3, 4]], worked by hand.
  expected = {0: [[1, 2], [3, 4]], 1: [[2, 4], [1, 3]], 2: [[4, 3], [2, 1]], 3: [[3, 1], [4, 2]]}
  for label, pixels in expected.items():
    (row,) = np.flatnonzero(rotated.labels == label)
    np.testing.assert_array_equal(rotated.images[row, :, :, 0], pixels)


def test_with_rotations_keeps_rotations_of_a_class_together():
  rotated = source_lib.with_rotations(_toy_source(num_classes=3))
  # Class c * 4 + r is class c turned r times, so its images have class c's values.
  values = rotated.images[:, 0, 0, 0]
  for label in range(12):
    assert set(values[rotated.labels == label] // 3) == {label // 4}


def test_source_rejects_bad_shapes():
  with pytest.raises(ValueError, match="uint8"):
    source_lib.ClassIndexedImages(
      images=np.zeros((2, 3, 3), np.uint8),
      labels=np.zeros(2, np.int32),
      class_names=("a",),
      base_class_ids=np.zeros(1, np.int32),
    )
  with pytest.raises(ValueError, match="labels must lie"):
    source_lib.ClassIndexedImages(
      images=np.zeros((2, 3, 3, 1), np.uint8),
      labels=np.array([0, 5], np.int32),
      class_names=("a",),
      base_class_ids=np.zeros(1, np.int32),
    )
