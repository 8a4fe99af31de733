"""benchmarks/convolution_kernels.py: its bfloat16 kernels compute float32's convolutions."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import convolution_kernels
from mann.models import grouped_convolution


@pytest.fixture
def grouped_bfloat16_kernels():
  """The benchmark times TF's bfloat16 grouped kernels: where they are missing there is
  nothing to time (tests/models/grouped_convolution_test.py tests the engine's fallback,
  and test_without_the_kernels_the_benchmark_says_so_in_one_line the benchmark's)."""
  if not grouped_convolution.grouped_kernels_work(tf.bfloat16):
    pytest.skip(
      "this machine's TensorFlow has no bfloat16 grouped-convolution kernels (oneDNN's "
      "bfloat16 path needs AVX-512 or AMX), the benchmark's subject"
    )


def test_each_kernel_in_both_dtypes_computes_the_convolution_and_its_gradients(
  grouped_bfloat16_kernels,
):
  del grouped_bfloat16_kernels
  """The float32 kernels against tf.nn.conv2d and its autodiff gradients (another
  code path: the grouped convolution differentiated by TF), bfloat16's error small."""
  x = tf.random.stateless_uniform([3, 7, 7, 2 * 4], seed=[0, 1])
  kernel = tf.random.stateless_normal([3, 3, 4, 2 * 5], seed=[0, 2])
  full, half = convolution_kernels._kernels(x, kernel, 2)  # pylint: disable=protected-access
  rounded = lambda t: tf.cast(tf.cast(t, tf.bfloat16), tf.float32)
  x_, kernel_ = rounded(x), rounded(kernel)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x_, kernel_])
    y = tf.nn.conv2d(x_, kernel_, 2, "SAME")
    output_gradient = rounded(tf.random.stateless_normal(y.shape, seed=[1, 2]))
    loss = tf.reduce_sum(y * output_gradient)
  expected = {
    "forward": y,
    "input_gradient": tape.gradient(loss, x_),
    "filter_gradient": tape.gradient(loss, kernel_),
  }
  for name, want in expected.items():
    np.testing.assert_allclose(full[name](0), want, rtol=1e-5, atol=1e-5, err_msg=name)
    got = half[name](0)
    assert got.dtype == tf.bfloat16
    # bfloat16 outputs keep 8 bits of mantissa: 2^-8 = 0.4% per element.
    assert convolution_kernels._relative_error(got, want) < 1e-2, name  # pylint: disable=protected-access


def test_a_layer_reports_each_kernel_in_both_dtypes(grouped_bfloat16_kernels):
  del grouped_bfloat16_kernels
  result = convolution_kernels.measure_layer(2, 4, 3, 2, 2, repeats=2)
  for name in ("forward", "input_gradient", "filter_gradient"):
    figures = result[name]
    assert figures["float32_seconds"] > 0 and figures["bfloat16_seconds"] > 0
    assert figures["bfloat16_over_float32"] == (
      figures["bfloat16_seconds"] / figures["float32_seconds"]
    )
    assert figures["bfloat16_relative_error"] < 1e-2


def test_tasks_in_batch_is_each_tasks_own_convolution():
  """The ordinary convolution of tasks_in_batch's images and kernel convolves each task's
  own images (task t's at t*B..t*B+B-1 of the batch axis) with the first task's kernel;
  for task 0 it is the grouped convolution's first group; the same number of outputs."""
  num_tasks, batch, channels, filters = 3, 2, 4, 5
  x = tf.random.stateless_uniform([batch, 6, 6, num_tasks * channels], seed=[0, 1])
  kernel = tf.random.stateless_normal([3, 3, channels, num_tasks * filters], seed=[0, 2])
  images, first_kernel = convolution_kernels.tasks_in_batch(x, kernel, num_tasks)
  assert images.shape == (num_tasks * batch, 6, 6, channels)
  assert first_kernel.shape == (3, 3, channels, filters)
  ordinary = tf.nn.conv2d(images, first_kernel, 2, "SAME")
  for t in range(num_tasks):
    own = x[..., t * channels : (t + 1) * channels]
    want = tf.nn.conv2d(own, kernel[..., :filters], 2, "SAME")
    np.testing.assert_allclose(ordinary[t * batch : (t + 1) * batch], want, rtol=1e-6)
  grouped = tf.nn.conv2d(x, kernel, 2, "SAME")
  np.testing.assert_allclose(ordinary[:batch], grouped[..., :filters], rtol=1e-5, atol=1e-6)
  assert ordinary.shape.num_elements() == grouped.shape.num_elements()


def test_the_ordinary_timings_are_reported_beside_the_grouped_ones(grouped_bfloat16_kernels):
  del grouped_bfloat16_kernels
  result = convolution_kernels.measure_layer(2, 4, 3, 2, 2, repeats=2, ordinary=True)
  for name in ("forward", "input_gradient", "filter_gradient"):
    figures = result[name]
    for dtype in ("float32", "bfloat16"):
      assert figures[f"ordinary_{dtype}_seconds"] > 0
      assert figures[f"grouped_over_ordinary_{dtype}"] == (
        figures[f"{dtype}_seconds"] / figures[f"ordinary_{dtype}_seconds"]
      )
  assert (
    "ordinary_float32_seconds"
    not in convolution_kernels.measure_layer(2, 4, 3, 2, 2, repeats=2)["forward"]
  )


def test_the_filter_gradient_check_is_small_where_the_stride_fits_the_input():
  check = convolution_kernels.check_filter_gradient(5, 4, 8, 2, calls=2)
  assert len(check["relative_errors"]) == 2 and max(check["relative_errors"]) < 1e-2


def test_without_the_kernels_the_benchmark_says_so_in_one_line(monkeypatch):
  assert (convolution_kernels.missing_kernels() is None) == (
    grouped_convolution.grouped_kernels_work(tf.bfloat16)
  )
  monkeypatch.setattr(grouped_convolution, "grouped_kernels_work", lambda dtype: False)
  reason = convolution_kernels.missing_kernels()
  assert "\n" not in reason and "no bfloat16 grouped-convolution kernels" in reason
