"""Tests of mann/data/pipeline.py: order, resumption and shapes of meta-batches."""

import numpy as np
import pytest
import tensorflow as tf

from mann import errors
from mann.data import pipeline
from mann.data import sampler as sampler_lib
from mann.data import sinusoid
from tests import class_images


def _image_sampler():
  source = class_images.random_class_images(20, 10)
  return sampler_lib.FewShotSampler(source, num_ways=5, num_shots=1, num_queries=2, seed=0)


@pytest.mark.parametrize(
  "make_sampler",
  [_image_sampler, lambda: sinusoid.SinusoidSampler(num_shots=5, num_queries=3, seed=0)],
)
def test_meta_batch_s_holds_episodes_s_times_t_onwards(make_sampler):
  sampler = make_sampler()
  batches = list(pipeline.meta_batches(sampler, meta_batch_size=4, num_steps=3))
  assert len(batches) == 3
  for step, batch in enumerate(batches):
    for task in range(4):
      expected = sampler.episode(step * 4 + task)
      for field, want in zip(batch, expected):
        assert field.shape[0] == 4
        np.testing.assert_array_equal(field[task], want)


def test_resumed_stream_continues_the_uninterrupted_one():
  sampler = _image_sampler()
  whole = list(pipeline.meta_batches(sampler, meta_batch_size=3).take(5))
  resumed = list(pipeline.meta_batches(sampler, meta_batch_size=3, start_step=2).take(3))
  for a, b in zip(whole[2:], resumed):
    for field_a, field_b in zip(a, b):
      np.testing.assert_array_equal(field_a, field_b)


def test_static_shapes_for_compilation():
  dataset = pipeline.meta_batches(_image_sampler(), meta_batch_size=8)
  assert dataset.element_spec.support_x.shape == (8, 5, 4, 4, 1)
  assert dataset.element_spec.query_y.shape == (8, 10)
  assert dataset.element_spec.support_y.dtype == tf.int32


def test_evaluation_episodes_are_finite_with_a_short_last_batch():
  batches = list(pipeline.episodes(_image_sampler(), num_episodes=10, batch_size=4))
  assert [b.support_x.shape[0] for b in batches] == [4, 4, 2]


def test_bad_meta_batch_size():
  with pytest.raises(errors.UserInputError, match="meta_batch_size"):
    pipeline.meta_batches(_image_sampler(), meta_batch_size=0)
