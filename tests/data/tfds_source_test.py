"""Tests of mann/data/tfds_source.py (and datasets.py's tfds:NAME path) with
tfds.testing.mock_data."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mann import errors
from mann.data import datasets
from mann.data import tfds_source


def _mnist_like(self, *args, **kwargs):
  """60 images of 28x28x1, 6 per label 0..9, pixel [0, 0] = 10 * label + copy number."""
  del self, args, kwargs
  labels = np.repeat(np.arange(10), 6)
  images = np.zeros((60, 28, 28, 1), np.uint8)
  images[:, 0, 0, 0] = 10 * labels + np.tile(np.arange(6), 10)
  return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


@pytest.fixture(autouse=True)
def _download_hosts_answer(monkeypatch):
  # mock_data serves the images; only the offline test below asks about the network.
  monkeypatch.setattr(tfds_source, "download_hosts_reachable", lambda hosts: True)


def test_an_unprepared_dataset_offline_is_one_line_before_any_download(tmp_path, monkeypatch):
  probed = []

  def refuse(address, timeout):
    probed.append((address, timeout))
    raise OSError("no route")

  monkeypatch.undo()  # the real probe, over a socket that never connects
  for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(tfds_source.socket, "create_connection", refuse)

  def download(self, *args, **kwargs):
    raise AssertionError("download_and_prepare was called")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
  with pytest.raises(
    errors.UserInputError, match=r"'mnist' is not prepared .* cannot be downloaded"
  ):
    tfds_source.load_tfds_images("mnist", data_dir=str(tmp_path), image_size=None, grayscale=True)
  # Each of mnist's download hosts asked once, with a timeout of seconds, not minutes.
  assert probed and all(port == 443 and timeout <= 10 for (_, port), timeout in probed)
  assert not (tmp_path / tfds_source.CACHE_FOLDER).exists()


def test_labels_become_classes_with_their_own_images(tmp_path):
  with tfds.testing.mock_data(as_dataset_fn=_mnist_like):
    source = tfds_source.load_tfds_images(
      "mnist", data_dir=str(tmp_path), image_size=None, grayscale=True
    )
  assert source.num_classes == 10 and source.image_shape == (28, 28, 1)
  np.testing.assert_array_equal(source.class_counts(), np.full(10, 6))
  np.testing.assert_array_equal(source.images[:, 0, 0, 0] // 10, source.labels)
  # The decoded arrays are cached under the data_dir for the next run.
  assert os.listdir(tmp_path / tfds_source.CACHE_FOLDER)


def test_random_mock_dataset_through_the_flag_path(tmp_path):
  # tfds:cifar100 with random mock images: resized, split by class, sampled.
  with tfds.testing.mock_data(num_examples=2000):
    splits = datasets.class_splits(
      "tfds:cifar100",
      data_dir=str(tmp_path),
      omniglot_dir=None,
      split_seed=0,
      image_size=16,
      train_rotations=False,
      class_split_fractions=(0.6, 0.2, 0.2),
    )
  total = sum(s.num_classes for s in splits.values())
  assert splits["train"].num_classes == round(0.6 * total)
  ids = [set(s.base_class_ids.tolist()) for s in splits.values()]
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
  sampler = datasets.make_sampler(
    "tfds:cifar100", split="train", num_ways=5, num_shots=1, num_queries=1, seed=0, splits=splits
  )
  episode = sampler.episode(0)
  assert episode.support_x.shape == (5, 16, 16, 3)
  assert (
    0.0 <= float(tf.reduce_min(episode.query_x)) <= float(tf.reduce_max(episode.query_x)) <= 1.0
  )


def test_unknown_names_fail_clearly(tmp_path):
  with pytest.raises(errors.UserInputError, match="no dataset named 'no_such_set'"):
    tfds_source.load_tfds_images(
      "no_such_set", data_dir=str(tmp_path), image_size=28, grayscale=False
    )


@pytest.mark.parametrize("env", [None, "/somewhere/tfds"])
def test_the_default_data_dir_is_tfds_own(env, monkeypatch):
  if env is None:
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  else:
    monkeypatch.setenv("TFDS_DATA_DIR", env)
  assert tfds_source.default_data_dir() == tfds.core.constants.get_default_data_dir()
