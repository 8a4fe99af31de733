"""Flags that choose the data, shared by every binary that reads episodes."""

from absl import flags

from mann import errors
from mann.data import augment
from mann.data import datasets

DATASET = flags.DEFINE_string(
  "dataset",
  "omniglot",
  "omniglot | sinusoid (the MAML paper's) | sinusoid_sum (sums of 5 sinusoids of random "
  "amplitude, frequency and phase; mann.data.sinusoid) | tfds:NAME (any labelled TFDS "
  "image dataset, e.g. tfds:mnist) | folder:PATH (a folder of class subfolders of PNG or "
  "JPEG images, PATH/CLASS/IMAGE.png; prepared once under --data_dir).",
)
DATA_DIR = flags.DEFINE_string(
  "data_dir",
  None,
  "TFDS data_dir: where prepared datasets and their decoded 28x28 arrays are kept "
  "(default: TFDS's, ~/tensorflow_datasets). Decoding happens once per data_dir.",
)
OMNIGLOT_DIR = flags.DEFINE_string(
  "omniglot_dir",
  None,
  "Folder holding images_background.zip and images_evaluation.zip (or a rebuilt/ "
  "folder with them), read offline by a local TFDS builder; unset: the stock "
  "tfds.load('omniglot') download.",
)
SPLIT_SEED = flags.DEFINE_integer(
  "split_seed",
  0,
  "Seed of the class shuffle that splits classes into train / "
  "validation / test (Omniglot: 1100 / 100 / 423 characters).",
)
IMAGE_SIZE = flags.DEFINE_integer(
  "image_size", 28, "Images are resized to image_size x image_size.", lower_bound=1
)
TRAIN_ROTATIONS = flags.DEFINE_boolean(
  "train_rotations",
  True,
  "Add 90/180/270-degree rotations of every training class as classes of their own.",
)
GRAYSCALE = flags.DEFINE_boolean(
  "grayscale",
  False,
  "tfds:NAME and folder:PATH only: keep one channel (Omniglot is always grey).",
)
CLASS_SPLIT_FRACTIONS = flags.DEFINE_list(
  "class_split_fractions",
  ["0.6", "0.2", "0.2"],
  "tfds:NAME and folder:PATH only: share of classes in train, validation, test.",
)
NUM_WAYS = flags.DEFINE_integer("num_ways", 5, "N: classes per task.", lower_bound=1)
NUM_SHOTS = flags.DEFINE_integer(
  "num_shots", 1, "K: support examples per class (sinusoid: points per task).", lower_bound=1
)
NUM_QUERIES = flags.DEFINE_integer(
  "num_queries", 15, "Q: query examples per class (sinusoid: points per task).", lower_bound=1
)


PROTOCOL = flags.DEFINE_enum(
  "protocol",
  "few_shot",
  ["few_shot", "online"],
  "few_shot: N-way K-shot support/query episodes; online: Santoro et al.'s sequences of "
  "N classes x --num_instances images, each step given the previous step's label.",
)
NUM_INSTANCES = flags.DEFINE_integer(
  "num_instances", 10, "online protocol: images per class in a sequence (L).", lower_bound=1
)
STRING_LABELS = flags.DEFINE_boolean(
  "string_labels",
  False,
  "mann, lstm: label classes with random 5-character strings over "
  "a 5-letter alphabet (Santoro et al.; read as 25 inputs, predicted by 5 softmaxes, "
  "right when all 5 characters are) instead of one-hot 0..N-1.",
)
AUGMENT_MAX_SHIFT = flags.DEFINE_integer(
  "augment_max_shift",
  0,
  "Training images only: random shift by up to this many pixels "
  "in x and y (Santoro et al.'s translation augmentation; 0 = off).",
  lower_bound=0,
)
AUGMENT_MAX_DEGREES = flags.DEFINE_float(
  "augment_max_degrees",
  0.0,
  "Training images only: random rotation by up to this many "
  "degrees either way (Santoro et al.'s rotation augmentation; 0 = off).",
  lower_bound=0.0,
)


def _is_valid_dataset(name: str) -> bool:
  try:
    datasets.check_dataset_name(name)
  except errors.UserInputError:
    return False
  return True


flags.register_validator(
  "dataset",
  _is_valid_dataset,
  message="must be omniglot, sinusoid, sinusoid_sum, tfds:NAME (e.g. tfds:mnist) or folder:PATH",
)


def class_splits():
  """The flags' train / validation / test class sources (None for sinusoid)."""
  if datasets.is_regression(DATASET.value):
    return None
  try:
    fractions = [float(f) for f in CLASS_SPLIT_FRACTIONS.value]
  except ValueError:
    raise errors.UserInputError(
      f"--class_split_fractions={','.join(CLASS_SPLIT_FRACTIONS.value)} must be three "
      f"numbers, e.g. 0.6,0.2,0.2"
    ) from None
  if len(fractions) != 3:
    raise errors.UserInputError("--class_split_fractions needs three numbers, e.g. 0.6,0.2,0.2")
  return datasets.class_splits(
    DATASET.value,
    data_dir=DATA_DIR.value,
    omniglot_dir=OMNIGLOT_DIR.value,
    split_seed=SPLIT_SEED.value,
    image_size=IMAGE_SIZE.value,
    train_rotations=TRAIN_ROTATIONS.value,
    grayscale=GRAYSCALE.value,
    class_split_fractions=fractions,
  )


def make_sampler(
  splits,
  *,
  split: str,
  seed: int,
  class_labels: bool = False,
  shuffle_support: bool = False,
  distortion: augment.Augmentation = augment.Augmentation(),
):
  """The sampler of `split` for the flags' dataset, protocol and episode shape
  (shuffle_support: see datasets.make_sampler). Training images get the flags' random
  augmentation; the others `distortion` (a fixed shear / scale, out of distribution)."""
  augmentation = (
    augment.Augmentation(max_shift=AUGMENT_MAX_SHIFT.value, max_degrees=AUGMENT_MAX_DEGREES.value)
    if split == "train"
    else distortion
  )
  return datasets.make_sampler(
    DATASET.value,
    split=split,
    num_ways=NUM_WAYS.value,
    num_shots=NUM_SHOTS.value,
    num_queries=NUM_QUERIES.value,
    seed=seed,
    splits=splits,
    class_labels=class_labels,
    protocol=PROTOCOL.value,
    num_instances=NUM_INSTANCES.value,
    shuffle_support=shuffle_support,
    augmentation=augmentation,
    string_labels=STRING_LABELS.value,
  )
