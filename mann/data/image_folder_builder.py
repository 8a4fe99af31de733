"""The TFDS builder behind mann.data.image_folder: one split of every image of a folder
of class subfolders, a BuilderConfig per folder content (its fingerprint).

Imported only when the images must be decoded, so a run whose images are cached never
imports TFDS.
"""

import os

import tensorflow as tf
import tensorflow_datasets as tfds

from mann import errors


class ImageFolderImages(tfds.core.GeneratorBasedBuilder):
  """Images of PATH/CLASS/*.png|jpg as {image: uint8 [H, W, 3], label: CLASS}, split
  "train" (the few-shot splits are made of classes later)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Every image of the folder, RGB, at its own size."}

  def __init__(self, *, folder: str, classes: dict[str, list[str]], config_name: str, data_dir):
    """folder: the image folder; classes: image_folder.list_classes(folder);
    config_name: image_folder.fingerprint(folder, classes); data_dir: TFDS data_dir."""
    self._folder, self._classes = folder, classes
    super().__init__(
      config=tfds.core.BuilderConfig(name=config_name, description=f"the images of {folder}"),
      data_dir=data_dir,
    )

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description="A folder of class subfolders of images.",
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(None, None, 3)),
          "label": tfds.features.ClassLabel(names=list(self._classes)),
        }
      ),
      supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for name, images in self._classes.items():
      for image_name in images:
        path = os.path.join(self._folder, name, image_name)
        try:
          image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
          ).numpy()
        except tf.errors.OpError as e:
          raise errors.UserInputError(
            f"{path} is not a readable image ({e.message.splitlines()[0]}); remove or replace it"
          ) from None
        yield f"{name}/{image_name}", {"image": image, "label": name}
