"""Any labelled TFDS image dataset as a class-indexed few-shot source.

The images are decoded, resized and stored once as a uint8 array under the TFDS
data_dir (folder `mann_decoded/`), so a second run loads one .npz file instead of
decoding every image again.
"""

import hashlib
import os
import shutil
import socket
import tempfile
import time
from typing import Any, Callable, Optional
import urllib.parse

from absl import logging
import numpy as np
import tensorflow as tf

from mann import errors
from mann import files
from mann.data import source as source_lib

CACHE_FOLDER = "mann_decoded"


def cached_source(
  path: str, build: Callable[[], source_lib.ClassIndexedImages]
) -> source_lib.ClassIndexedImages:
  """Loads a source from `path` (.npz), or builds it and writes it there.

  The file is written to a temporary name and renamed, so an interrupted run never
  leaves a half-written cache behind.
  """
  if os.path.exists(path):
    try:
      with np.load(path, allow_pickle=False) as arrays:
        return source_lib.ClassIndexedImages(
          images=arrays["images"],
          labels=arrays["labels"],
          class_names=tuple(str(n) for n in arrays["class_names"]),
          base_class_ids=arrays["base_class_ids"],
        )
    except (OSError, ValueError, KeyError) as e:
      raise errors.UserInputError(
        f"decoded-image cache {path} is unreadable ({e}); delete it and rerun to rebuild it"
      ) from None
  source = build()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with files.atomic_write(path) as tmp_path, open(tmp_path, "wb") as f:
    np.savez(
      f,
      images=source.images,
      labels=source.labels,
      class_names=np.array(source.class_names),
      base_class_ids=source.base_class_ids,
    )
  return source


def default_data_dir() -> str:
  """TFDS's default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets), as
  tfds.core.constants.get_default_data_dir gives it, without importing TFDS (a tenth of
  a second of every start whose images are cached)."""
  return os.environ.get(
    "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
  )


def cache_path(data_dir: Optional[str], filename: str) -> str:
  """Where a decoded source is kept: `mann_decoded/filename` under the TFDS data_dir
  the caller named (None: TFDS's default, which $TFDS_DATA_DIR sets)."""
  root = data_dir if data_dir is not None else default_data_dir()
  return os.path.join(os.path.expanduser(root), CACHE_FOLDER, filename)


def decode_images(
  dataset: tf.data.Dataset,
  *,
  image_size: Optional[int],
  grayscale: bool,
  invert: bool,
  image_key: str = "image",
  label_key: str = "label",
) -> tuple[np.ndarray, np.ndarray]:
  """Decodes a TFDS dataset of {image, label} into arrays, resizing on the way.

  Args:
    dataset: unbatched elements with uint8 [H, W, C] images and integer labels.
    image_size: resize to image_size x image_size by area averaging (the right
      filter for shrinking); None keeps the stored size, which must then be fixed.
    grayscale: keep one channel (the first, or the luminance of RGB).
    invert: store 255 - pixel, e.g. to make Omniglot's black strokes on white
      into bright strokes on a zero background, as the MAML code feeds them.

  Returns:
    images uint8 [num_images, S, S, C'] and labels int64 [num_images].
  """

  def convert(example):
    image = example[image_key]
    if grayscale and image.shape[-1] == 3:
      image = tf.image.rgb_to_grayscale(image)
    elif grayscale:
      image = image[..., :1]
    image = tf.cast(image, tf.float32)
    if image_size is not None:
      image = tf.image.resize(image, [image_size, image_size], method="area")
    if invert:
      image = 255.0 - image
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    return image, tf.cast(example[label_key], tf.int64)

  dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
  images, labels = [], []
  start = time.time()
  for image_batch, label_batch in dataset.as_numpy_iterator():
    images.append(image_batch)
    labels.append(label_batch)
  logging.info(
    "decoded %d images in %.1f s", sum(len(part) for part in labels), time.time() - start
  )
  if not images:
    raise errors.UserInputError("the dataset has no images")
  return np.concatenate(images), np.concatenate(labels)


def content_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """A permutation that sorts images by label, then by a hash of their pixels.

  TFDS stores examples in an order that depends on how the data was prepared; an
  order set by content alone makes the episodes of a seed the same whichever
  builder (stock download or local zips) prepared the same images.
  """
  digests = [hashlib.sha1(row.tobytes()).hexdigest() for row in images]
  return np.lexsort((np.array(digests), labels))


def load_tfds_images(
  name: str,
  *,
  data_dir: Optional[str],
  image_size: Optional[int],
  grayscale: bool,
  image_key: str = "image",
  label_key: str = "label",
) -> source_lib.ClassIndexedImages:
  """All splits of the TFDS dataset `name` merged and grouped by label.

  Args:
    name: a registered TFDS dataset name, e.g. "mnist" or "cifar100".
    data_dir: TFDS data_dir (None: TFDS's default, ~/tensorflow_datasets).
    image_size: resize to image_size x image_size; None keeps the stored size.
    grayscale: keep one channel.
    image_key, label_key: the feature names of the image and its ClassLabel.

  Returns:
    A source with one class per label value; class names from the ClassLabel.
  """
  import tensorflow_datasets as tfds  # here, not at the top: see default_data_dir

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise errors.UserInputError(
      f"TFDS has no dataset named '{name}'; pick one of tfds.list_builders(), e.g. tfds:mnist"
    ) from None
  features = builder.info.features
  if image_key not in features or label_key not in features:
    raise errors.UserInputError(
      f"TFDS dataset '{name}' lacks an '{image_key}' or '{label_key}' feature; it has "
      f"{sorted(features.keys())}"
    )
  stored_shape = features[image_key].shape
  if image_size is None and None in stored_shape[:2]:
    raise errors.UserInputError(
      f"TFDS dataset '{name}' has images of varying size {stored_shape}; give an "
      f"image size to resize them to"
    )
  size_tag = "native" if image_size is None else f"{image_size}px"
  colour_tag = "grey" if grayscale else "colour"
  path = cache_path(data_dir, f"{builder.name}-{builder.version}-{size_tag}-{colour_tag}.npz")

  def build() -> source_lib.ClassIndexedImages:
    if not builder.is_prepared():
      _require_download_hosts(builder)
    builder.download_and_prepare()
    # "all" is every split of the dataset, merged.
    dataset = builder.as_dataset(split="all", shuffle_files=False)
    images, labels = decode_images(
      dataset,
      image_size=image_size,
      grayscale=grayscale,
      invert=False,
      image_key=image_key,
      label_key=label_key,
    )
    return source_from_arrays(images, labels, class_names=features[label_key].names)

  return cached_source(path, build)


def prepare_staged(make_builder: Callable[[Optional[str]], Any], *, data_dir, download_config=None):
  """The TFDS builder make_builder(data_dir) gives, prepared. The preparation happens in
  a temporary folder under data_dir (None: TFDS's default) and moves into place whole
  once it succeeds, so a failure (a corrupt file, a full disk) leaves nothing behind.

  Raises:
    errors.UserInputError: data_dir is not writable, or as the preparation raises it.
  """
  builder = make_builder(data_dir)
  if builder.is_prepared():
    return builder
  root = builder.data_dir_root
  made_root = not os.path.exists(root)
  try:
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(dir=root, prefix=f".{builder.name}-preparing-")
  except OSError as e:
    raise errors.UserInputError(
      f"cannot write to the TFDS data_dir {root} ({e.strerror}); give a --data_dir you can write to"
    ) from None
  try:
    staged = make_builder(staging)
    staged.download_and_prepare(download_config=download_config)
    os.makedirs(os.path.dirname(builder.data_dir), exist_ok=True)
    os.replace(staged.data_dir, builder.data_dir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    if made_root:
      shutil.rmtree(root, ignore_errors=True)
    raise
  shutil.rmtree(staging, ignore_errors=True)
  return make_builder(data_dir)


def download_hosts_reachable(hosts: list[tuple[str, int]], timeout_seconds: float = 5.0) -> bool:
  """Whether any of the (host, port) pairs accepts a TCP connection within the timeout."""
  for host, port in hosts:
    try:
      socket.create_connection((host, port), timeout=timeout_seconds).close()
      return True
    except OSError:
      continue
  return False


def _require_download_hosts(builder) -> None:
  """One line, in seconds, where the dataset is not prepared and none of the hosts it
  downloads from answers (offline, TFDS would retry for minutes, then print a traceback).
  Skipped behind a proxy, where a direct connection proves nothing."""
  if any(
    os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
  ):
    return
  hosts = set()
  for url in builder.url_infos or {}:
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname:
      hosts.add((parsed.hostname, parsed.port or (80 if parsed.scheme == "http" else 443)))
  if hosts and not download_hosts_reachable(sorted(hosts)):
    names = ", ".join(sorted(host for host, _ in hosts))
    raise errors.UserInputError(
      f"TFDS dataset '{builder.name}' is not prepared under {builder.data_dir} and cannot "
      f"be downloaded ({names} does not answer); prepare it where there is internet "
      f"(tfds build {builder.name} --data_dir=DIR), copy DIR here and pass --data_dir=DIR"
    )


def source_from_arrays(
  images: np.ndarray, labels: np.ndarray, class_names
) -> source_lib.ClassIndexedImages:
  """A source from decoded arrays; classes are the label values that occur, in order.

  Args:
    images: uint8 [num_images, H, W, C].
    labels: int [num_images], dataset labels (may skip values).
    class_names: the dataset's name for each label value (indexed by label).
  """
  order = content_order(images, labels)
  images, labels = images[order], labels[order]
  present, dense_labels = np.unique(labels, return_inverse=True)
  return source_lib.ClassIndexedImages(
    images=np.ascontiguousarray(images),
    labels=dense_labels.astype(np.int32),
    class_names=tuple(str(class_names[label]) for label in present),
    base_class_ids=present.astype(np.int32),
  )
