"""Curvature of a task's loss at given weights: why gradient descent on it can diverge.

Plain gradient descent at rate lr is stable along a direction of curvature lambda only
while lambda < 2 / lr; an initialisation meta-trained for one inner step (MAML) need not
keep the curvature of later steps below that bound.
"""

from typing import Callable, Sequence

import tensorflow as tf

Weights = Sequence[tf.Tensor]


def _dot(a: Weights, b: Weights) -> tf.Tensor:
  return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(a, b)])


def hessian_vector_product(
  loss_fn: Callable[..., tf.Tensor], weights: Weights, vector: Weights, args: tuple = ()
) -> list[tf.Tensor]:
  """H v, H the Hessian of the scalar loss_fn(weights, *args) over all weights (each
  tensor of `vector` shaped like its weight), by differentiating <grad, v> once more."""
  weights = [tf.convert_to_tensor(w) for w in weights]
  with tf.GradientTape() as outer:
    outer.watch(weights)
    with tf.GradientTape() as inner:
      inner.watch(weights)
      loss = loss_fn(weights, *args)
    gradient_dot_vector = _dot(inner.gradient(loss, weights), vector)
  return outer.gradient(gradient_dot_vector, weights)


@tf.function
def _power_iteration(loss_fn, weights, vector, num_iterations, args):
  """num_iterations normalised Hessian-vector products from vector, in one graph (a
  while loop: one product's ops, whatever the count); the last Rayleigh quotient."""
  eigenvalue = tf.constant(0.0, weights[0].dtype)
  for _ in tf.range(num_iterations):
    norm = tf.sqrt(_dot(vector, vector))
    vector = [v / norm for v in vector]
    product = hessian_vector_product(loss_fn, weights, vector, args)
    eigenvalue = _dot(vector, product)
    vector = product
  return eigenvalue


def top_hessian_eigenvalue(
  loss_fn: Callable[..., tf.Tensor],
  weights: Weights,
  *,
  num_iterations: int = 50,
  seed: int = 0,
  args: tuple = (),
) -> float:
  """The Hessian's eigenvalue of largest magnitude (signed), by power iteration from a
  seeded random direction: the Rayleigh quotient v'Hv of the last unit vector v.

  loss_fn(weights, *args): the same function (and args of the same shapes) on every
  call reuses one compiled iteration, e.g. one per learner with the task in args.
  """
  weights = [tf.convert_to_tensor(w) for w in weights]
  vector = [
    tf.random.stateless_normal(tf.shape(w), seed=[seed, i], dtype=w.dtype)
    for i, w in enumerate(weights)
  ]
  return float(_power_iteration(loss_fn, weights, vector, tf.constant(num_iterations), tuple(args)))
