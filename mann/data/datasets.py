"""Datasets by name: what the binaries' --dataset flag selects.

omniglot   Omniglot characters (TFDS), MAML-code split, 28x28 grey.
sinusoid   MAML-paper sinusoid regression.
sinusoid_sum  sums of 5 random sinusoids (random frequencies): a broader regression family.
tfds:NAME  any labelled TFDS image dataset, its classes split by a seeded shuffle.
folder:PATH  a folder of class subfolders of images (mann.data.image_folder), split so too.
"""

from typing import Optional, Sequence, Union

from mann import errors
from mann.data import augment
from mann.data import image_folder
from mann.data import labels as labels_lib
from mann.data import omniglot
from mann.data import sampler as sampler_lib
from mann.data import santoro
from mann.data import sinusoid
from mann.data import source as source_lib
from mann.data import tfds_source

SPLITS = ("train", "validation", "test")
TFDS_PREFIX = "tfds:"
FOLDER_PREFIX = "folder:"
Sampler = Union[
  sampler_lib.FewShotSampler,
  sinusoid.SinusoidSampler,
  sinusoid.SinusoidSumSampler,
  santoro.SequenceSampler,
]
REGRESSION_SAMPLERS = {
  "sinusoid": sinusoid.SinusoidSampler,
  "sinusoid_sum": sinusoid.SinusoidSumSampler,
}


def check_dataset_name(dataset: str) -> None:
  """Raises UserInputError unless `dataset` is omniglot, sinusoid, sinusoid_sum,
  tfds:NAME or folder:PATH."""
  if dataset == "omniglot" or dataset in REGRESSION_SAMPLERS:
    return
  for prefix in (TFDS_PREFIX, FOLDER_PREFIX):
    if dataset.startswith(prefix) and len(dataset) > len(prefix):
      return
  raise errors.UserInputError(
    f"unknown dataset '{dataset}': use omniglot, sinusoid, sinusoid_sum, tfds:NAME "
    f"(e.g. tfds:mnist) or folder:PATH (a folder of class subfolders of images)"
  )


def is_regression(dataset: str) -> bool:
  return dataset in REGRESSION_SAMPLERS


def class_splits(
  dataset: str,
  *,
  data_dir: Optional[str],
  omniglot_dir: Optional[str],
  split_seed: int,
  image_size: int,
  train_rotations: bool,
  grayscale: bool = False,
  class_split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> dict[str, source_lib.ClassIndexedImages]:
  """The train / validation / test classes of a classification dataset.

  Args:
    dataset: "omniglot", "tfds:NAME" or "folder:PATH".
    data_dir: TFDS data_dir (None: TFDS's default).
    omniglot_dir: folder of the Omniglot zips for the offline builder; None uses the
      stock TFDS download.
    split_seed: seed of the class shuffle behind the split.
    image_size: images are resized to image_size x image_size.
    train_rotations: add 90/180/270-degree rotations of training classes as classes.
    grayscale: tfds:NAME and folder:PATH only, keep one channel (Omniglot is always grey).
    class_split_fractions: tfds:NAME and folder:PATH only, the share of classes in each split
      (Omniglot uses its fixed 1100 / 100 / 423).

  Returns:
    {"train": ..., "validation": ..., "test": ...}.
  """
  check_dataset_name(dataset)
  if dataset == "omniglot":
    characters = omniglot.load_omniglot(
      data_dir=data_dir, omniglot_dir=omniglot_dir, image_size=image_size
    )
    return omniglot.omniglot_splits(
      characters, split_seed=split_seed, train_rotations=train_rotations
    )
  if is_regression(dataset):
    raise errors.UserInputError(f"{dataset} is a regression task family; it has no classes")
  if dataset.startswith(FOLDER_PREFIX):
    source = image_folder.load_image_folder(
      dataset[len(FOLDER_PREFIX) :], data_dir=data_dir, image_size=image_size, grayscale=grayscale
    )
  else:
    source = tfds_source.load_tfds_images(
      dataset[len(TFDS_PREFIX) :], data_dir=data_dir, image_size=image_size, grayscale=grayscale
    )
  sizes = source_lib.split_sizes_from_fractions(source.num_classes, class_split_fractions)
  ids = source_lib.split_classes(source.num_classes, split_sizes=sizes, seed=split_seed)
  splits = {name: source.subset(class_ids) for name, class_ids in zip(SPLITS, ids)}
  if train_rotations:
    splits["train"] = source_lib.with_rotations(splits["train"])
  return splits


def split_seed(seed: int, split: str) -> int:
  """The sampler seed of `split` in a run seeded `seed`: each split draws from its own
  stream (3 * seed + split number), so one seed fixes all three and they never share
  draws."""
  if split not in SPLITS:
    raise errors.UserInputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
  return 3 * seed + SPLITS.index(split)


def make_sampler(
  dataset: str,
  *,
  split: str,
  num_ways: int,
  num_shots: int,
  num_queries: int,
  seed: int,
  splits: Optional[dict[str, source_lib.ClassIndexedImages]] = None,
  class_labels: bool = False,
  protocol: str = "few_shot",
  num_instances: int = 10,
  shuffle_support: bool = False,
  augmentation: augment.Augmentation = augment.Augmentation(),
  string_labels: bool = False,
) -> Sampler:
  """The episode sampler of one split.

  Each split draws from its own seed stream (split_seed), so validation and test
  tasks never repeat the training tasks' draws, and one seed fixes all three.

  Args:
    dataset: "omniglot", "sinusoid", "sinusoid_sum", "tfds:NAME" or "folder:PATH".
    split: "train", "validation" or "test".
    num_ways, num_shots, num_queries: N, K, Q (num_ways is ignored for sinusoid).
    seed: the run's seed.
    splits: class_splits(...) of a classification dataset; unused for sinusoid.
    class_labels: label images by their class in the split, not 0..N-1 (transfer).
    protocol: "few_shot" (support/query episodes) or "online" (Santoro sequences of
      num_ways classes x num_instances images; num_shots and num_queries unused).
    num_instances: L, images per class in an online sequence.
    shuffle_support: few-shot image episodes: support in a random order, not class by
      class (for sequence models).
    augmentation: per-image random translation and rotation of image episodes
      (give it to the training split only).
    string_labels: image episodes labelled with random 5-character strings (integers
      in [0, 3125), mann.data.labels) instead of 0..N-1, for sequence models.
  """
  check_dataset_name(dataset)
  stream_seed = split_seed(seed, split)
  if protocol == "online":
    if splits is None:
      raise errors.UserInputError("--protocol=online needs an image dataset, not sinusoid")
    return santoro.SequenceSampler(
      splits[split],
      num_ways=num_ways,
      num_instances=num_instances,
      seed=stream_seed,
      augmentation=augmentation,
      string_labels=string_labels,
    )
  if is_regression(dataset):
    return REGRESSION_SAMPLERS[dataset](
      num_shots=num_shots, num_queries=num_queries, seed=stream_seed
    )
  if splits is None:
    raise ValueError(f"make_sampler: {dataset} needs the class splits")
  return sampler_lib.FewShotSampler(
    splits[split],
    num_ways=num_ways,
    num_shots=num_shots,
    num_queries=num_queries,
    seed=stream_seed,
    class_labels=class_labels,
    shuffle_support=shuffle_support,
    augmentation=augmentation,
    label_space=labels_lib.label_space(string_labels),
  )
