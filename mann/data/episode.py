"""The Episode type: one few-shot task, or a meta-batch of tasks stacked on axis 0."""

import typing

import tensorflow as tf


class Episode(typing.NamedTuple):
  """Support and query sets of one task, or of T tasks stacked on a leading axis.

  Classification (N ways, K shots, Q queries per class), one task:
    support_x: float32 [N*K, H, W, C], values in [0, 1].
    support_y: int32 [N*K], labels 0..N-1, class-major: label i at rows i*K..i*K+K-1.
    query_x:   float32 [N*Q, H, W, C].
    query_y:   int32 [N*Q], class-major like support_y.
  Regression (K support points, Q query points):
    support_x: float32 [K, D_in]; support_y: float32 [K, D_out];
    query_x:   float32 [Q, D_in]; query_y:   float32 [Q, D_out].
  A meta-batch has the same fields with a leading task axis [T, ...].

  Way and shot are not stored: they follow from the sampler that made the episode.
  """

  support_x: tf.Tensor
  support_y: tf.Tensor
  query_x: tf.Tensor
  query_y: tf.Tensor


class EpisodeSampler(typing.Protocol):
  """Anything that maps an episode index to an Episode, deterministically.

  The same (sampler seed, index) gives the same task on every run and every
  machine: episodes are a pure function of the index, which is what lets a
  resumed run continue the exact data stream and lets tf.data make episodes in
  parallel without changing their order.
  """

  def episode(self, index: tf.Tensor) -> Episode:
    """Returns the task numbered `index` (int64 scalar tensor)."""
    ...

  @property
  def element_spec(self) -> Episode:
    """tf.TensorSpec of each field of one episode (static shapes)."""
    ...
