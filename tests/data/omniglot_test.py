"""Tests of mann/data/omniglot.py on the real Omniglot zips (offline TFDS builder)."""

import ast
import io
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mann import errors
from mann.data import omniglot
from mann.data import omniglot_builder
from mann.data import sampler as sampler_lib
from mann.data import tfds_source
from tests import conftest
from tests import image_folders


def test_all_characters_with_twenty_images_of_28x28(omniglot_characters):
  characters = omniglot_characters
  assert characters.num_classes == 1623
  np.testing.assert_array_equal(characters.class_counts(), np.full(1623, 20))
  assert characters.images.shape == (32460, 28, 28, 1)
  assert characters.images.dtype == np.uint8
  np.testing.assert_array_equal(characters.base_class_ids, np.arange(1623))


@pytest.mark.parametrize("label", [0, 707, 708, 963, 964, 1622])
def test_images_match_an_independent_decode_of_the_zip(omniglot_characters, omniglot_dir, label):
  # TFDS label L is the character whose files are named (L+1):04d_NN.png. Decode drawer
  # 01's PNG with PIL, make strokes bright, shrink 105 -> 28 by exact area averaging in
  # numpy, and find it among the images of class L.
  zips = omniglot.find_omniglot_zips(omniglot_dir)
  archive_name = "images_background.zip" if label < 964 else "images_evaluation.zip"
  with zipfile.ZipFile(zips[archive_name]) as archive:
    (member,) = [n for n in archive.namelist() if n.endswith(f"/{label + 1:04d}_01.png")]
    pil_image = Image.open(io.BytesIO(archive.read(member))).convert("L")
  resize = image_folders.area_resize_matrix(105, 28)
  expected = 255.0 - resize @ np.asarray(pil_image, np.float64) @ resize.T
  images = omniglot_characters.images[omniglot_characters.labels == label][..., 0]
  distances = np.abs(images.astype(np.float64) - expected).max(axis=(1, 2))
  assert distances.min() <= 0.5 + 1e-3, distances.min()  # uint8 rounding only
  assert expected.max() > 200  # the drawing is there: strokes are bright


def test_split_is_disjoint_covers_all_and_is_seeded(omniglot_characters):
  splits = omniglot.omniglot_splits(omniglot_characters, split_seed=0, train_rotations=False)
  assert {k: v.num_classes for k, v in splits.items()} == {
    "train": 1100,
    "validation": 100,
    "test": 423,
  }
  ids = [set(splits[k].base_class_ids.tolist()) for k in ("train", "validation", "test")]
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
  assert set.union(*ids) == set(range(1623))
  again = omniglot.omniglot_splits(omniglot_characters, split_seed=0, train_rotations=False)
  other = omniglot.omniglot_splits(omniglot_characters, split_seed=1, train_rotations=False)
  np.testing.assert_array_equal(again["test"].base_class_ids, splits["test"].base_class_ids)
  assert set(other["test"].base_class_ids.tolist()) != ids[2]


def test_rotated_training_classes_stay_on_the_training_side(omniglot_characters):
  splits = omniglot.omniglot_splits(omniglot_characters, split_seed=0, train_rotations=True)
  train = splits["train"]
  assert train.num_classes == 4400
  bases, counts = np.unique(train.base_class_ids, return_counts=True)
  assert len(bases) == 1100 and np.all(counts == 4)
  held_out = set(splits["test"].base_class_ids) | set(splits["validation"].base_class_ids)
  assert not set(bases.tolist()) & held_out
  # Training class 4c+1 is class 4c turned a quarter counter-clockwise, image by image.
  first = train.images[train.labels == 0]
  turned = train.images[train.labels == 1]
  np.testing.assert_array_equal(np.rot90(first, 1, axes=(1, 2)), turned)
  assert splits["test"].num_classes == 423  # no rotations outside training


def test_episodes_are_28x28x1_in_unit_range(omniglot_characters):
  splits = omniglot.omniglot_splits(omniglot_characters, split_seed=0, train_rotations=True)
  sampler = sampler_lib.FewShotSampler(
    splits["test"], num_ways=5, num_shots=1, num_queries=15, seed=0
  )
  episode = sampler.episode(0)
  assert episode.support_x.shape == (5, 28, 28, 1)
  assert episode.query_x.shape == (75, 28, 28, 1)
  for images in (episode.support_x, episode.query_x):
    assert float(tf.reduce_min(images)) == 0.0 and float(tf.reduce_max(images)) == 1.0


def test_second_load_reads_the_cache_without_decoding(
  omniglot_characters, omniglot_dir, tfds_data_dir, monkeypatch
):
  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded again")

  monkeypatch.setattr(tfds_source, "decode_images", no_decoding)
  again = omniglot.load_omniglot(data_dir=tfds_data_dir, omniglot_dir=omniglot_dir)
  np.testing.assert_array_equal(again.images, omniglot_characters.images)


def test_a_cached_load_reads_no_zip_and_imports_no_tfds(
  omniglot_characters, omniglot_dir, tfds_data_dir, tmp_path
):
  # In a fresh process (this one has imported TFDS already), from a folder without zips:
  # the decoded cache alone is read.
  child = (
    "import sys; from mann.data import omniglot; "
    f"s = omniglot.load_omniglot(data_dir={tfds_data_dir!r}, omniglot_dir={str(tmp_path)!r}); "
    "print(s.images.shape, s.images.sum(), 'tensorflow_datasets' in sys.modules)"
  )
  out = subprocess.run(
    [sys.executable, "-c", child], capture_output=True, text=True, check=True
  ).stdout.split("\n")[-2]
  images = omniglot_characters.images
  assert out == f"{images.shape} {images.sum()} False"


def test_the_offline_builder_has_the_name_and_version_of_its_cache(tmp_path):
  builder = omniglot_builder.OmniglotLocal(data_dir=str(tmp_path))
  assert builder.name == omniglot.LOCAL_BUILDER_NAME
  assert str(builder.version) == omniglot.LOCAL_BUILDER_VERSION


def test_missing_directory_names_it_and_the_files(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(errors.UserInputError) as e:
    omniglot.load_omniglot(data_dir=str(tmp_path), omniglot_dir=missing)
  assert missing in str(e.value)
  assert "images_background.zip and images_evaluation.zip" in str(e.value)
  assert not os.listdir(tmp_path)  # nothing written


def test_directory_without_zips_names_the_missing_one(tmp_path, omniglot_dir):
  zips = omniglot.find_omniglot_zips(omniglot_dir)
  shutil.copy(zips["images_background.zip"], tmp_path)
  with pytest.raises(errors.UserInputError, match=r"lacks images_evaluation\.zip"):
    omniglot.find_omniglot_zips(str(tmp_path))


def test_corrupt_and_partial_zips_are_rejected(tmp_path, omniglot_dir):
  zips = omniglot.find_omniglot_zips(omniglot_dir)
  shutil.copy(zips["images_evaluation.zip"], tmp_path)
  (tmp_path / "images_background.zip").write_bytes(b"not a zip at all")
  with pytest.raises(errors.UserInputError, match="is not a readable zip"):
    omniglot.find_omniglot_zips(str(tmp_path))
  # The small original zips hold a subset of the characters: rejected by count.
  shutil.copy(
    os.path.join(omniglot_dir, "images_background_small1.zip"), tmp_path / "images_background.zip"
  )
  with pytest.raises(errors.UserInputError, match="expected 964 / 19280"):
    omniglot.find_omniglot_zips(str(tmp_path))


def test_stock_tfds_path_gives_the_same_structure(tmp_path):
  # No network here: the stock builder's as_dataset is mocked to give 2 images for each
  # of its 1623 labels (pixel value = label % 200); load_omniglot must go through
  # tfds.builder("omniglot") and group them into 1623 classes.
  def as_dataset(self, *args, **kwargs):
    del args, kwargs
    assert self.name == "omniglot"
    labels = np.repeat(np.arange(1623), 2)
    images = np.broadcast_to(
      (labels % 200).astype(np.uint8)[:, None, None, None], (len(labels), 105, 105, 3)
    )
    return tf.data.Dataset.from_tensor_slices(
      {
        "image": images,
        "label": labels,
        "alphabet": np.zeros_like(labels),
        "alphabet_char_id": np.zeros_like(labels),
      }
    )

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    characters = omniglot.load_omniglot(data_dir=str(tmp_path), omniglot_dir=None)
  assert characters.num_classes == 1623
  np.testing.assert_array_equal(characters.class_counts(), np.full(1623, 2))
  # Inverted: stored pixel = 255 - (label % 200).
  np.testing.assert_array_equal(characters.images[:, 5, 5, 0], 255 - (characters.labels % 200))


def test_the_loader_and_the_builder_do_not_import_each_other():
  def imported(path):
    tree = ast.parse((conftest.REPO_ROOT / path).read_text())
    names = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module:
        names |= {f"{node.module}.{a.name}" for a in node.names}
      elif isinstance(node, ast.Import):
        names |= {a.name for a in node.names}
    return names

  assert "mann.data.omniglot" not in imported("mann/data/omniglot_builder.py")
  assert "mann.data.omniglot_files" in imported("mann/data/omniglot_builder.py")


def test_a_corrupt_member_is_named_and_leaves_nothing_under_the_data_dir(
  tmp_path, omniglot_dir_with_a_bad_member
):
  with zipfile.ZipFile(os.path.join(omniglot_dir_with_a_bad_member, "images_background.zip")) as z:
    bad = sorted(n for n in z.namelist() if n.endswith(".png"))[conftest.BAD_MEMBER_INDEX]
  shared = tmp_path / "shared_tfds"  # a data_dir that holds another dataset already
  (shared / "mnist" / "3.0.1").mkdir(parents=True)
  (shared / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
  for data_dir in (shared, tmp_path / "new_tfds"):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(errors.UserInputError) as e:
      omniglot.load_omniglot(data_dir=str(data_dir), omniglot_dir=omniglot_dir_with_a_bad_member)
    assert f"member {bad} is corrupt (Bad CRC-32)" in str(e.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
