"""Tests of mann/analysis/curvature.py against explicit Hessians in numpy."""

import numpy as np
import tensorflow as tf

from mann.analysis import curvature


def test_hessian_vector_product_and_top_eigenvalue_of_a_quadratic():
  rng = np.random.default_rng(0)
  root = rng.normal(size=(5, 5))
  matrix = root @ root.T + np.diag([0.0, 0.0, 0.0, 0.0, 9.0])  # symmetric, one clear top
  b = rng.normal(size=5)
  # 0.5 w'Aw + b'w with w split into a [2] and a [3] tensor: Hessian A everywhere.
  loss_fn = lambda ws: (
    0.5 * tf.tensordot(tf.concat(ws, 0), tf.linalg.matvec(tf.constant(matrix), tf.concat(ws, 0)), 1)
    + tf.tensordot(tf.constant(b), tf.concat(ws, 0), 1)
  )
  weights = [tf.constant(rng.normal(size=2)), tf.constant(rng.normal(size=3))]
  vector = [tf.constant(rng.normal(size=2)), tf.constant(rng.normal(size=3))]
  got = np.concatenate(
    [p.numpy() for p in curvature.hessian_vector_product(loss_fn, weights, vector)]
  )
  np.testing.assert_allclose(got, matrix @ np.concatenate([v.numpy() for v in vector]), rtol=1e-12)
  top = curvature.top_hessian_eigenvalue(loss_fn, weights, num_iterations=200)
  np.testing.assert_allclose(top, np.linalg.eigvalsh(matrix)[-1], rtol=1e-6)


def test_top_eigenvalue_of_a_small_network_equals_the_explicit_hessians():
  rng = np.random.default_rng(1)
  x, y = tf.constant(rng.normal(size=(6, 2))), tf.constant(rng.normal(size=(6, 1)))
  shapes = [(2, 3), (3,), (3, 1)]
  sizes = [int(np.prod(s)) for s in shapes]

  def loss_fn(ws):
    return tf.reduce_mean(tf.square(tf.tanh(x @ ws[0] + ws[1]) @ ws[2] - y))

  flat = rng.normal(size=sum(sizes))
  split = lambda f: [tf.reshape(t, s) for t, s in zip(tf.split(f, sizes), shapes)]
  with tf.GradientTape() as outer:  # the explicit 12 x 12 Hessian, row by row
    flat_t = tf.constant(flat)
    outer.watch(flat_t)
    with tf.GradientTape() as inner:
      inner.watch(flat_t)
      loss = loss_fn(split(flat_t))
    gradient = inner.gradient(loss, flat_t)
  hessian = outer.jacobian(gradient, flat_t).numpy()
  eigenvalues = np.linalg.eigvalsh(hessian)
  want = eigenvalues[np.argmax(np.abs(eigenvalues))]
  got = curvature.top_hessian_eigenvalue(loss_fn, split(tf.constant(flat)), num_iterations=500)
  np.testing.assert_allclose(got, want, rtol=1e-4)
