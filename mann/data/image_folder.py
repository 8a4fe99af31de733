"""Any folder of class subfolders of images as a class-indexed few-shot source.

PATH/CLASS/IMAGE.png (or .jpg, .jpeg): one class per subfolder, as mini-ImageNet, CUB
and most users' own images come. The images go through a TFDS builder of ours
(image_folder_builder, imported only when they must be decoded), prepared once under the
TFDS data_dir per folder content, and the decoded source is cached like tfds:NAME's.
"""

import hashlib
import os
from typing import Optional

from mann import errors
from mann.data import source as source_lib
from mann.data import tfds_source

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_classes(path: str) -> dict[str, list[str]]:
  """{class subfolder name: its image file names}, both sorted; subfolders without
  images and hidden entries left out.

  Raises:
    errors.UserInputError: path is not a folder, or holds no class subfolder with images.
  """
  layout = f"lay it out as {path}/CLASS/IMAGE.png (PNG or JPEG), one subfolder per class"
  if not os.path.isdir(path):
    raise errors.UserInputError(f"image folder {path} does not exist; {layout}")
  classes = {}
  for name in sorted(os.listdir(path)):
    folder = os.path.join(path, name)
    if name.startswith(".") or not os.path.isdir(folder):
      continue
    images = sorted(
      f
      for f in os.listdir(folder)
      if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, f))
    )
    if images:
      classes[name] = images
  if not classes:
    raise errors.UserInputError(f"image folder {path} holds no class subfolder of images; {layout}")
  return classes


def fingerprint(path: str, classes: dict[str, list[str]]) -> str:
  """16 hex digits of the folder's real path and every image's name, size and
  modification time: a change to the folder gives another prepared copy and cache."""
  digest = hashlib.sha1(os.path.realpath(path).encode())
  for name, images in classes.items():
    for image in images:
      stat = os.stat(os.path.join(path, name, image))
      digest.update(f"{name}/{image}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
  return digest.hexdigest()[:16]


def load_image_folder(
  path: str, *, data_dir: Optional[str], image_size: int, grayscale: bool
) -> source_lib.ClassIndexedImages:
  """All images of an image folder, grouped by class.

  Args:
    path: the folder of class subfolders.
    data_dir: TFDS data_dir where the prepared copy and the decoded cache live (None:
      TFDS's default).
    image_size: images are resized to image_size x image_size (area averaging).
    grayscale: keep one channel (the luminance); else three (RGB).

  Returns:
    A source with one class per subfolder (class names: the subfolder names), images
    uint8 [num_images, image_size, image_size, 1 or 3].

  Raises:
    errors.UserInputError: no such folder, no images, or an image that does not decode
      (named).
  """
  path = os.path.realpath(os.path.expanduser(path))
  classes = list_classes(path)
  key = fingerprint(path, classes)
  colour = "grey" if grayscale else "colour"
  cache = tfds_source.cache_path(data_dir, f"image_folder-{key}-{image_size}px-{colour}.npz")

  def build() -> source_lib.ClassIndexedImages:
    from mann.data import image_folder_builder  # TFDS, only when decoding

    builder = tfds_source.prepare_staged(
      lambda folder: image_folder_builder.ImageFolderImages(
        folder=path, classes=classes, config_name=key, data_dir=folder
      ),
      data_dir=data_dir,
    )
    images, labels = tfds_source.decode_images(
      builder.as_dataset(split="train", shuffle_files=False),
      image_size=image_size,
      grayscale=grayscale,
      invert=False,
    )
    return tfds_source.source_from_arrays(
      images, labels, class_names=builder.info.features["label"].names
    )

  return tfds_source.cached_source(cache, build)
