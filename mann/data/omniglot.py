"""Omniglot (Lake et al. 2015) through TFDS, split and prepared as the MAML paper does.

Two ways in, one result:
  * online: the stock TFDS builder, `tfds.load("omniglot")`, which downloads;
  * offline: `omniglot_builder.OmniglotLocal`, a TFDS builder with the stock builder's features that
    reads images_background.zip and images_evaluation.zip from a folder given as
    TFDS's manual_dir (the zips of github.com/brendenlake/omniglot, or the rebuilt
    ones of the same layout in ../shared/data/omniglot/rebuilt).

Either way, TFDS train+test are merged into the 1623 characters, which a seeded
shuffle splits into 1100 train / 100 validation / 423 test characters (the split
sizes of the MAML code); images are 28x28 grey in [0, 1] with bright strokes on a
zero background; training may add rotations by 90/180/270 degrees as new classes.
"""

import os
from typing import Optional

from mann import errors
from mann.data import omniglot_files
from mann.data import source as source_lib
from mann.data import tfds_source

# The zips' contents and the offline builder's name (re-exported: their one home is
# mann.data.omniglot_files).
NUM_CHARACTERS = omniglot_files.NUM_CHARACTERS
IMAGES_PER_CHARACTER = omniglot_files.IMAGES_PER_CHARACTER
LOCAL_BUILDER_NAME = omniglot_files.LOCAL_BUILDER_NAME
LOCAL_BUILDER_VERSION = omniglot_files.LOCAL_BUILDER_VERSION
find_omniglot_zips = omniglot_files.find_omniglot_zips
SPLIT_SIZES = {"train": 1100, "validation": 100, "test": 423}
IMAGE_SIZE = 28


def load_omniglot(
  *, data_dir: Optional[str], omniglot_dir: Optional[str], image_size: int = IMAGE_SIZE
) -> source_lib.ClassIndexedImages:
  """All 1623 Omniglot characters, one class each, in TFDS label order.

  Args:
    data_dir: TFDS data_dir where the prepared dataset and the decoded cache live
      (None: TFDS's default). Decoding happens once per data_dir.
    omniglot_dir: a folder with the Omniglot zips, for the offline builder; None
      uses the stock TFDS builder, which downloads them.
    image_size: side of the square images after resizing.

  Returns:
    A source of 1623 classes (class c = TFDS label c), images uint8
    [32460, image_size, image_size, 1] with strokes bright (255) on black (0).
  """
  stock = None  # the stock TFDS builder, on the download path only
  if omniglot_dir is not None:
    name, version = LOCAL_BUILDER_NAME, LOCAL_BUILDER_VERSION
  else:
    import tensorflow_datasets as tfds

    stock = tfds.builder("omniglot", data_dir=data_dir)
    name, version = stock.name, str(stock.version)
  cache_path = tfds_source.cache_path(data_dir, f"{name}-{version}-{image_size}px-grey.npz")
  # Fail early, with the folder named; once the images are decoded the zips are not read
  # again, so only a missing folder is an error then.
  if omniglot_dir is not None and not (os.path.exists(cache_path) and os.path.isdir(omniglot_dir)):
    find_omniglot_zips(omniglot_dir)

  def build() -> source_lib.ClassIndexedImages:
    # TFDS (which the builder imports) only when the images are not decoded yet: it is a
    # tenth of a second of every start otherwise.
    from mann.data import omniglot_builder

    if stock is None:
      assert omniglot_dir is not None  # stock is None exactly then
      builder = omniglot_builder.prepare(data_dir=data_dir, manual_dir=omniglot_dir)
    else:
      builder = stock
      builder.download_and_prepare()
    dataset = builder.as_dataset(split="train+test", shuffle_files=False)
    images, labels = tfds_source.decode_images(
      dataset, image_size=image_size, grayscale=True, invert=True
    )
    source = tfds_source.source_from_arrays(
      images, labels, class_names=builder.info.features["label"].names
    )
    if source.num_classes != NUM_CHARACTERS:
      raise errors.UserInputError(
        f"TFDS {builder.name} gave {source.num_classes} characters, expected "
        f"{NUM_CHARACTERS}; delete its folder under {builder.data_dir_root} and rerun"
      )
    return source

  return tfds_source.cached_source(cache_path, build)


def omniglot_splits(
  source: source_lib.ClassIndexedImages, *, split_seed: int, train_rotations: bool
) -> dict[str, source_lib.ClassIndexedImages]:
  """The MAML-code character split of the 1623 characters.

  Args:
    source: load_omniglot's 1623 characters.
    split_seed: seed of the character shuffle; the same seed gives the same split.
    train_rotations: make the 90/180/270-degree rotations of each training character
      classes of their own (4400 training classes). Rotation comes after the split,
      so every rotation of a character is on the side of that character.

  Returns:
    {"train": ..., "validation": ..., "test": ...}, each its own 0-based classes.
  """
  ids = source_lib.split_classes(
    source.num_classes, split_sizes=list(SPLIT_SIZES.values()), seed=split_seed
  )
  splits = {name: source.subset(class_ids) for name, class_ids in zip(SPLIT_SIZES, ids)}
  if train_rotations:
    splits["train"] = source_lib.with_rotations(splits["train"])
  return splits
