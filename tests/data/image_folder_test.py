"""Tests of mann/data/image_folder.py: a folder of class subfolders through our TFDS
builder, against PIL's decode; the cache; the folders it refuses."""

import os

import numpy as np
import pytest

from mann import errors
from mann.data import datasets
from mann.data import image_folder
from mann.data import source as source_lib
from mann.data import tfds_source
from tests import image_folders


@pytest.fixture(scope="module")
def folder(tmp_path_factory, omniglot_dir):
  path = tmp_path_factory.mktemp("image_folder") / "characters"
  files = image_folders.omniglot_image_folder(
    omniglot_dir, str(path), num_classes=6, per_class=5, jpeg_classes=2
  )
  return str(path), files


def test_every_class_and_image_comes_through_as_pil_decodes_it(folder, tmp_path):
  path, files = folder
  source = image_folder.load_image_folder(
    path, data_dir=str(tmp_path), image_size=28, grayscale=True
  )
  assert source.class_names == tuple(sorted(files))
  assert source.images.shape == (30, 28, 28, 1) and source.images.dtype == np.uint8
  np.testing.assert_array_equal(source.class_counts(), np.full(6, 5))
  resize = image_folders.area_resize_matrix(105, 28)
  for label, name in enumerate(source.class_names):
    images = source.images[source.labels == label][..., 0].astype(np.float64)
    for file in files[name]:
      # PIL's luminance, shrunk by exact area averaging. PNG: uint8 rounding only. JPEG:
      # PIL's and TF's decoders (IDCT, chroma upsampling) and grey weights differ by a
      # few levels at the strokes' edges.
      expected = resize @ image_folders.decoded_grey(file) @ resize.T
      distance = np.abs(images - expected).max(axis=(1, 2)).min()
      assert distance <= (8.0 if file.endswith(".jpg") else 1.0), (file, distance)
      assert expected.min() < 50  # the drawing is there: dark strokes on white


def test_colour_keeps_three_channels_and_a_second_load_reads_the_cache(
  folder, tmp_path, monkeypatch
):
  path, _ = folder
  first = image_folder.load_image_folder(
    path, data_dir=str(tmp_path), image_size=20, grayscale=False
  )
  assert first.images.shape == (30, 20, 20, 3)

  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded again")

  monkeypatch.setattr(tfds_source, "decode_images", no_decoding)
  again = image_folder.load_image_folder(
    path, data_dir=str(tmp_path), image_size=20, grayscale=False
  )
  np.testing.assert_array_equal(again.images, first.images)


def test_the_classes_split_by_the_seeded_shuffle(folder, tmp_path):
  path, files = folder
  splits = datasets.class_splits(
    f"folder:{path}",
    data_dir=str(tmp_path),
    omniglot_dir=None,
    split_seed=1,
    image_size=28,
    train_rotations=False,
    grayscale=True,
    class_split_fractions=(0.5, 0.25, 0.25),
  )
  names = [n for split in splits.values() for n in split.class_names]
  assert sorted(names) == sorted(files)  # disjoint and complete
  assert tuple(s.num_classes for s in splits.values()) == source_lib.split_sizes_from_fractions(
    6, (0.5, 0.25, 0.25)
  )


def test_a_missing_or_empty_folder_is_one_line(tmp_path):
  with pytest.raises(errors.UserInputError, match=r"image folder .*nowhere does not exist"):
    image_folder.load_image_folder(
      str(tmp_path / "nowhere"), data_dir=str(tmp_path), image_size=28, grayscale=True
    )
  (tmp_path / "empty" / "a_class").mkdir(parents=True)
  (tmp_path / "empty" / "a_class" / "notes.txt").write_text("not an image")
  with pytest.raises(errors.UserInputError, match="holds no class subfolder of images"):
    image_folder.load_image_folder(
      str(tmp_path / "empty"), data_dir=str(tmp_path), image_size=28, grayscale=True
    )


def test_an_unreadable_image_is_named_and_nothing_is_prepared(folder, tmp_path):
  path, files = folder
  broken = tmp_path / "broken"
  for name, paths in files.items():
    (broken / name).mkdir(parents=True)
    for file in paths:
      (broken / name / os.path.basename(file)).write_bytes(open(file, "rb").read())
  bad = broken / sorted(files)[3] / "bad.png"
  bad.write_bytes(b"\x89PNG not really")
  data_dir = tmp_path / "tfds"
  with pytest.raises(errors.UserInputError) as e:
    image_folder.load_image_folder(
      str(broken), data_dir=str(data_dir), image_size=28, grayscale=True
    )
  assert f"{bad} is not a readable image" in str(e.value)
  assert not data_dir.exists()
