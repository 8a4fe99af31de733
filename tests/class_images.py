"""Small labelled image sets for the data and evaluation tests."""

import numpy as np

from mann.data import source as source_lib


def class_images(images: np.ndarray, num_classes: int) -> source_lib.ClassIndexedImages:
  """uint8 images [num_classes * per_class, H, W, C], class by class, as classes "0",
  "1", ... with base ids 0, 1, ..."""
  return source_lib.ClassIndexedImages(
    images=images,
    labels=np.repeat(np.arange(num_classes), len(images) // num_classes).astype(np.int32),
    class_names=tuple(map(str, range(num_classes))),
    base_class_ids=np.arange(num_classes, dtype=np.int32),
  )


def random_class_images(
  num_classes: int, per_class: int, *, size: int = 4, seed: int = 0
) -> source_lib.ClassIndexedImages:
  """num_classes classes of per_class random size x size x 1 images."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (num_classes * per_class, size, size, 1), dtype=np.uint8)
  return class_images(images, num_classes)
