"""The offline Omniglot builder: a TFDS builder with the stock 'omniglot' features that
reads images_background.zip and images_evaluation.zip from TFDS's manual_dir.

Imported only when the images must be decoded (mann.data.omniglot.load_omniglot), so a
run whose images are cached never imports TFDS.
"""

import os
import zipfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from mann import errors
from mann.data import omniglot_files
from mann.data import tfds_source

_NUM_ALPHABETS = 50


def _character_records(zip_path: str):
  """Yields (alphabet, alphabet_char_id, label, member name) of every PNG, in the stock
  builder's order and numbering: label = the global character number in the file name
  (0709_01.png is label 708), alphabet_char_id = characterNN - 1."""
  with zipfile.ZipFile(zip_path) as archive:
    names = sorted(n for n in archive.namelist() if n.endswith(".png"))
  for name in names:
    _, alphabet, character, image = name.split("/")
    yield (alphabet, int(character[len("character") :]) - 1, int(image.split("_")[0]) - 1, name)


class OmniglotLocal(tfds.core.GeneratorBasedBuilder):
  """Omniglot from local zips (TFDS manual_dir): the stock 'omniglot' features and splits
  train (images_background) and test (images_evaluation), without a download."""

  VERSION = tfds.core.Version(omniglot_files.LOCAL_BUILDER_VERSION)
  RELEASE_NOTES = {"3.0.0": "Stock omniglot 3.0.0 features, read from manual_dir."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Put images_background.zip and images_evaluation.zip of "
    "github.com/brendenlake/omniglot (python/ folder) in the manual_dir, or in its "
    "rebuilt/ folder."
  )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description="Omniglot (Lake et al. 2015), 1623 characters of 50 alphabets.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(105, 105, 3), encoding_format="png"),
          "alphabet": tfds.features.ClassLabel(num_classes=_NUM_ALPHABETS),
          "alphabet_char_id": np.int64,
          "label": tfds.features.ClassLabel(num_classes=omniglot_files.NUM_CHARACTERS),
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://github.com/brendenlake/omniglot/",
    )

  def _split_generators(self, dl_manager):
    zips = omniglot_files.find_omniglot_zips(os.fspath(dl_manager.manual_dir))
    alphabets, label_names = set(), {}
    for path in zips.values():
      for alphabet, char_id, label, _ in _character_records(path):
        alphabets.add(alphabet)
        label_names[label] = f"{alphabet}_{char_id}"
    if sorted(label_names) != list(range(omniglot_files.NUM_CHARACTERS)):
      raise errors.UserInputError(
        f"the Omniglot zips in {dl_manager.manual_dir} do not number their characters "
        f"1..{omniglot_files.NUM_CHARACTERS}; use the original or rebuilt zips"
      )
    self.info.features["alphabet"].names = sorted(alphabets)
    self.info.features["label"].names = [label_names[k] for k in sorted(label_names)]
    return {
      "train": self._generate_examples(zips["images_background.zip"]),
      "test": self._generate_examples(zips["images_evaluation.zip"]),
    }

  def _generate_examples(self, zip_path):
    with zipfile.ZipFile(zip_path) as archive:
      for alphabet, char_id, label, name in _character_records(zip_path):
        key = f"{alphabet}_{char_id}_{os.path.basename(name)}"  # the stock builder's key
        try:
          image = archive.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
          raise errors.UserInputError(
            f"{zip_path}: member {name} is corrupt ({str(e).split(' for file ')[0]}); "
            "replace the zip with a good copy (github.com/brendenlake/omniglot, python/ "
            "folder) and rerun"
          ) from None
        yield (
          key,
          {
            "image": image,
            "alphabet": alphabet,
            "alphabet_char_id": char_id,
            "label": label,
          },
        )


def prepare(*, data_dir, manual_dir: str) -> OmniglotLocal:
  """The offline builder, prepared under data_dir (None: TFDS's default) from the zips in
  manual_dir, staged so that a failure leaves nothing behind (tfds_source.prepare_staged).

  Raises:
    errors.UserInputError: a corrupt zip member (named), or data_dir not writable.
  """
  return tfds_source.prepare_staged(
    lambda folder: OmniglotLocal(data_dir=folder),
    data_dir=data_dir,
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
  )
