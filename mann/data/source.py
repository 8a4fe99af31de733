"""Class-indexed image sources: the images of a set of classes, held in memory.

A few-shot benchmark is a set of classes, each with a handful of images. Every
source here is decoded once into one uint8 array (Omniglot at 28x28 is 25 MB), so
that sampling an episode is a gather, never a decode.
"""

import dataclasses
from typing import Sequence, Union

import numpy as np

from mann import errors


@dataclasses.dataclass(frozen=True)
class ClassIndexedImages:
  """Images grouped by class.

  Attributes:
    images: uint8 [num_images, H, W, C].
    labels: int32 [num_images], the class of each image, in 0..num_classes-1.
    class_names: one name per class, e.g. "Latin/character01" or
      "Latin/character01/rot90"; tells a person (and a test) where a class came from.
    base_class_ids: int32 [num_classes], the id of the class this one was made from
      in the original dataset (its TFDS label); rotated copies share their base id.
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  base_class_ids: np.ndarray

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(
        f"images must be uint8 [num_images, H, W, C], got {self.images.dtype} {self.images.shape}"
      )
    if self.labels.shape != (self.images.shape[0],):
      raise ValueError(f"labels must be [{self.images.shape[0]}], got {self.labels.shape}")
    if len(self.class_names) != len(self.base_class_ids):
      raise ValueError("class_names and base_class_ids differ in length")
    if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
      raise ValueError(f"labels must lie in 0..{self.num_classes - 1}")

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def class_counts(self) -> np.ndarray:
    """int64 [num_classes]: how many images each class has."""
    return np.bincount(self.labels, minlength=self.num_classes)

  def class_table(self) -> np.ndarray:
    """int32 [num_classes, max_count]: row c lists the image indices of class c in
    ascending order, padded with -1 past class_counts()[c]."""
    counts = self.class_counts()
    table = np.full((self.num_classes, max(int(counts.max(initial=0)), 1)), -1, np.int32)
    order = np.argsort(self.labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c in range(self.num_classes):
      table[c, : counts[c]] = order[starts[c] : starts[c] + counts[c]]
    return table

  def subset(self, class_ids: Union[Sequence[int], np.ndarray]) -> "ClassIndexedImages":
    """The classes `class_ids`, relabelled 0..len(class_ids)-1 in the given order."""
    ids = np.asarray(class_ids, np.int64)
    if len(np.unique(ids)) != len(ids):
      raise ValueError("subset: class_ids repeat")
    new_label = np.full(self.num_classes, -1, np.int64)
    new_label[ids] = np.arange(len(ids))
    keep = new_label[self.labels] >= 0
    return ClassIndexedImages(
      images=self.images[keep],
      labels=new_label[self.labels[keep]].astype(np.int32),
      class_names=tuple(self.class_names[c] for c in ids),
      base_class_ids=self.base_class_ids[ids],
    )


def split_classes(num_classes: int, *, split_sizes: Sequence[int], seed: int) -> list[np.ndarray]:
  """Splits class ids 0..num_classes-1 by a seeded shuffle into disjoint groups.

  Args:
    num_classes: how many classes there are.
    split_sizes: the size of each group, e.g. (1100, 100, 423) for Omniglot; they
      must add up to num_classes.
    seed: the shuffle's seed; the same seed gives the same split on every machine
      (numpy's PCG64 through default_rng is stable across numpy versions).

  Returns:
    One sorted int64 array of class ids per group.
  """
  if sum(split_sizes) != num_classes or min(split_sizes) < 0:
    raise errors.UserInputError(
      f"class split sizes {tuple(split_sizes)} must be non-negative and add up to the "
      f"{num_classes} classes of the dataset"
    )
  permutation = np.random.default_rng(seed).permutation(num_classes)
  bounds = np.cumsum([0, *split_sizes])
  return [np.sort(permutation[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def split_sizes_from_fractions(num_classes: int, fractions: Sequence[float]) -> tuple[int, ...]:
  """Whole class counts in proportion to `fractions`; the last group takes the rest."""
  if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
    raise errors.UserInputError(
      f"class split fractions {tuple(fractions)} must be non-negative and add up to 1"
    )
  sizes = [int(round(f * num_classes)) for f in fractions[:-1]]
  return (*sizes, num_classes - sum(sizes))


def with_rotations(
  source: ClassIndexedImages, quarter_turns: Sequence[int] = (0, 1, 2, 3)
) -> ClassIndexedImages:
  """Each class rotated by each multiple of 90 degrees becomes a class of its own.

  Class c rotated by quarter_turns[r] is class c * R + r (R = len(quarter_turns)), so a
  rotated class keeps its base class's base_class_id: splits made before this call
  never put two rotations of one character on different sides.

  Args:
    source: square images [num_images, S, S, C].
    quarter_turns: counter-clockwise turns by 90 degrees, each in 0..3, no repeats.

  Returns:
    A source with num_classes * R classes and num_images * R images.
  """
  turns = list(quarter_turns)
  if len(set(turns)) != len(turns) or not all(0 <= t <= 3 for t in turns):
    raise errors.UserInputError(f"rotations {turns} must be distinct quarter turns in 0..3")
  height, width = source.images.shape[1:3]
  if height != width and any(t % 2 for t in turns):
    raise ValueError(f"90-degree rotations need square images, got {height}x{width}")
  num_turns = len(turns)
  images = np.concatenate([np.rot90(source.images, t, axes=(1, 2)) for t in turns])
  labels = np.concatenate([source.labels * num_turns + r for r in range(num_turns)])
  names = tuple(f"{name}/rot{90 * t}" for name in source.class_names for t in turns)
  return ClassIndexedImages(
    images=np.ascontiguousarray(images),
    labels=labels.astype(np.int32),
    class_names=names,
    base_class_ids=np.repeat(source.base_class_ids, num_turns),
  )
