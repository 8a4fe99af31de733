"""Tests of mann/data/datasets.py: dataset names, the splits' seed streams, which sampler
each protocol gets."""

import numpy as np
import pytest

from mann import errors
from mann.data import datasets
from mann.data import labels as labels_lib
from mann.data import sampler as sampler_lib
from mann.data import santoro
from mann.data import sinusoid
from tests import class_images


def _splits():
  return {
    split: class_images.random_class_images(n, 4, seed=seed)
    for seed, (split, n) in enumerate((("train", 8), ("validation", 6), ("test", 6)))
  }


def _same_episodes(a, b, num=3):
  return all(np.array_equal(x, y) for i in range(num) for x, y in zip(a.episode(i), b.episode(i)))


@pytest.mark.parametrize("name", ["omniglot", "sinusoid", "sinusoid_sum", "tfds:mnist"])
def test_known_dataset_names_pass(name):
  datasets.check_dataset_name(name)


@pytest.mark.parametrize("name", ["imagenet", "tfds:", "Omniglot"])
def test_unknown_dataset_names_are_one_line(name):
  with pytest.raises(errors.UserInputError, match=f"unknown dataset '{name}'.*tfds:NAME"):
    datasets.check_dataset_name(name)


def test_splits_draw_from_disjoint_seed_streams():
  seeds = [datasets.split_seed(seed, split) for seed in range(4) for split in datasets.SPLITS]
  assert len(set(seeds)) == len(seeds)
  assert datasets.split_seed(2, "validation") == 7
  with pytest.raises(errors.UserInputError, match="unknown split 'val'"):
    datasets.split_seed(0, "val")


def test_a_regression_sampler_is_seeded_by_its_split_stream():
  test = datasets.make_sampler(
    "sinusoid", split="test", num_ways=1, num_shots=5, num_queries=3, seed=1
  )
  direct = sinusoid.SinusoidSampler(num_shots=5, num_queries=3, seed=datasets.split_seed(1, "test"))
  assert _same_episodes(test, direct)
  train = datasets.make_sampler(
    "sinusoid", split="train", num_ways=1, num_shots=5, num_queries=3, seed=1
  )
  assert not _same_episodes(train, test, num=1)
  assert datasets.is_regression("sinusoid") and not datasets.is_regression("omniglot")


def test_few_shot_image_tasks_come_from_the_splits_classes():
  splits = _splits()
  got = datasets.make_sampler(
    "omniglot",
    split="validation",
    num_ways=3,
    num_shots=1,
    num_queries=2,
    seed=0,
    splits=splits,
    string_labels=True,
  )
  direct = sampler_lib.FewShotSampler(
    splits["validation"],
    num_ways=3,
    num_shots=1,
    num_queries=2,
    seed=datasets.split_seed(0, "validation"),
    label_space=labels_lib.STRING_LABEL_SPACE,
  )
  assert _same_episodes(got, direct)


def test_the_online_protocol_gets_santoro_sequences():
  splits = _splits()
  got = datasets.make_sampler(
    "omniglot",
    split="test",
    num_ways=3,
    num_shots=1,
    num_queries=1,
    seed=0,
    splits=splits,
    protocol="online",
    num_instances=4,
  )
  direct = santoro.SequenceSampler(
    splits["test"], num_ways=3, num_instances=4, seed=datasets.split_seed(0, "test")
  )
  assert isinstance(got, santoro.SequenceSampler) and _same_episodes(got, direct)
  with pytest.raises(errors.UserInputError, match="online needs an image dataset"):
    datasets.make_sampler(
      "sinusoid", split="test", num_ways=1, num_shots=1, num_queries=1, seed=0, protocol="online"
    )


def test_a_regression_family_has_no_class_splits():
  with pytest.raises(errors.UserInputError, match="sinusoid is a regression task family"):
    datasets.class_splits(
      "sinusoid",
      data_dir=None,
      omniglot_dir=None,
      split_seed=0,
      image_size=28,
      train_rotations=False,
    )
