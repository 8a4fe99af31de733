"""The sequence models (models.mann, models.lstm) run for T tasks at once, each with its
own weights: what mann.models.task_batched does for conv4, for the MANN and the LSTM.

A gradient-based meta-learner over a sequence model adapts a copy of its weights per
task. Mapping a per-task RNN over the tasks (tf.map_fn) runs T recurrences one after
the other, each a loop of small ops; here the T recurrences run as one, step by step:

  encoder (conv4 features): mann.models.task_batched.TaskBatchedModel, grouped
    convolutions over all images of all tasks;
  LSTM: each task's input projection for every step at once, [T, S*L, D] x [T, D, 4U],
    then per step one batched matmul of the state, [T, S, U] x [T, U, 4U];
  memory access: the weight-free equations of mann.memory.access on the T*S sequences
    flattened into one batch;
  heads: batched matmuls.

The time loop is unrolled in Python (episodes are short: 2*N*K steps at most), so every
shape is static and XLA compiles the step. The equations are those of the Keras layers
(LSTMCell's gate order i, f, c, o; MANNCell calls mann.memory.access as this does),
checked against model.stateless_call per task in float64.
"""

import math
from typing import Optional

import keras
import tensorflow as tf

from mann.memory import access
from mann.models.mann import MANNCell
from mann.models import task_batched


def unsupported_reason(model: keras.Model) -> Optional[str]:
  """None when TaskBatchedSequenceModel can run `model` (built by models.mann or
  models.lstm), else why not (one line)."""
  names = {layer.name for layer in model.layers}
  if "rnn" in names:
    cell = model.get_layer("rnn").cell
    if not isinstance(cell, MANNCell):
      return f"{model.name}'s rnn layer is not a MANNCell"
  elif "lstm" in names and "logits" in names:
    layer = model.get_layer("lstm")
    if not isinstance(layer, keras.layers.LSTM) or layer.go_backwards:
      return f"{model.name}'s lstm layer is not a forward keras.layers.LSTM"
    if layer.dropout or layer.recurrent_dropout:
      return f"{model.name}'s lstm layer has dropout"
  else:
    return f"{model.name} is not a models.mann or models.lstm sequence model"
  if "encoder" in names:
    encoder = model.get_layer("encoder").encoder
    reason = task_batched.unsupported_reason(encoder)
    if reason is not None:
      return f"encoder: {reason}"
  return None


def _dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  """x [T, ..., D] through per-task kernel [T, D, U] and bias [T, U] -> [T, ..., U].

  One batched matmul of x folded to [T, B, D]: the gradient of an einsum with an
  ellipsis ("t...d,tdu->t...u") goes through an [T, ..., D, U] broadcast, 40x slower.
  """
  lead = x.shape[1:-1]
  y = tf.matmul(tf.reshape(x, [x.shape[0], -1, x.shape[-1]]), kernel) + bias[:, None, :]
  return tf.reshape(y, [x.shape[0], *lead, kernel.shape[-1]])


def _lstm_gates(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Keras LSTMCell's update from the pre-activations z [..., 4U] (gates i, f, c, o)."""
  i, f, g, o = tf.split(z, 4, axis=-1)
  c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
  return tf.sigmoid(o) * tf.tanh(c), c


class TaskBatchedSequenceModel:
  """models.mann / models.lstm run functionally for T tasks, each with its own weights.

  `batched.stateless_call(weights, non_trainable, x, training=...)` is the task-batched
  counterpart of `model.stateless_call`, as task_batched.TaskBatchedModel's is.
  """

  def __init__(self, model: keras.Model):
    reason = unsupported_reason(model)
    if reason is not None:
      raise ValueError(f"cannot batch tasks of {model.name}: {reason}")
    self.model = model
    position = {id(w): i for i, w in enumerate(model.trainable_weights)}
    statistic_position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    self._indices = lambda layer: [position[id(w)] for w in layer.trainable_weights]
    names = {layer.name for layer in model.layers}
    self._encoder = None
    if "encoder" in names:
      encoder = model.get_layer("encoder").encoder
      self._encoder = task_batched.TaskBatchedModel(encoder)
      self._encoder_weights = self._indices(encoder)
      self._encoder_statistics = [statistic_position[id(w)]
                                  for w in encoder.non_trainable_variables]
      self._image_shape = tuple(model.get_layer("images").target_shape[1:])
      self._pixels = math.prod(self._image_shape)
    if "rnn" in names:
      self._cell = model.get_layer("rnn").cell
      self._core = self._mann
    else:
      self._lstm_weights = self._indices(model.get_layer("lstm"))
      self._head_weights = self._indices(model.get_layer("logits"))
      self._core = self._lstm

  def stateless_call(self, weights: list[tf.Tensor], non_trainable: list[tf.Tensor],
                     x: tf.Tensor, *, training: bool) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """Args:
      weights: model.trainable_weights' values with a leading task axis, [T, *shape].
      non_trainable: model.non_trainable_variables' values (the encoder's batch-norm
        statistics; the LSTM's unused dropout seed), shared by the tasks.
      x: [T, S, L, input_size]: S sequences of L steps per task.
      training: batch-norm mode of the encoder.

    Returns:
      logits [T, S, L, num_classes], and the non-trainable weights as each task's pass
      leaves them, [T, *shape].
    """
    num_tasks, num_sequences, length = x.shape[:3]
    new_statistics = [tf.tile(v[None], [num_tasks] + [1] * v.shape.rank)
                      for v in non_trainable]
    if self._encoder is not None:
      # tf.split, not slices: a slice's gradient is a zero-padded copy of all of x.
      pixels, labels = tf.split(x, [self._pixels, x.shape[-1] - self._pixels], axis=-1)
      images = tf.reshape(pixels, [num_tasks, num_sequences * length, *self._image_shape])
      features, encoder_statistics = self._encoder.stateless_call(
          [weights[i] for i in self._encoder_weights],
          [non_trainable[i] for i in self._encoder_statistics], images, training=training)
      for i, value in zip(self._encoder_statistics, encoder_statistics):
        new_statistics[i] = value
      features = tf.reshape(features, [num_tasks, num_sequences, length, -1])
      x = tf.concat([features, labels], axis=-1)
    return self._core(weights, x), new_statistics

  def _lstm(self, weights, x):
    """The LSTM baseline's core and head: x [T, S, L, D] -> logits [T, S, L, N]."""
    kernel, recurrent, bias = (weights[i] for i in self._lstm_weights)
    # Every step's input part at once, unstacked once: a slice per step would have a
    # gradient per step the size of all steps (0.5 s of a 2 s MANN step, profiled).
    projected = tf.unstack(_dense(x, kernel, bias), axis=2)
    h = tf.zeros([*x.shape[:2], recurrent.shape[1]], x.dtype)
    c, outputs = h, []
    for step_input in projected:
      h, c = _lstm_gates(step_input + tf.matmul(h, recurrent), c)
      outputs.append(h)
    return _dense(tf.stack(outputs, axis=2), *(weights[i] for i in self._head_weights))

  def _mann(self, weights, x):
    """The MANN cell over x [T, S, L, D] -> logits [T, S, L, N] (MANNCell.call's steps)."""
    cell = self._cell
    layer_weights = lambda layer: [weights[i] for i in self._indices(layer)]
    kernel, recurrent, bias = layer_weights(cell.controller)
    key_kernel, key_bias = layer_weights(cell.key_layer)
    gate_kernel, gate_bias = layer_weights(cell.gate_layer)
    output_kernel, output_bias = layer_weights(cell.output_layer)
    strength = (layer_weights(cell.strength_layer) if cell.strength_layer is not None
                else None)
    num_tasks, num_sequences, _, input_size = x.shape
    batch = num_tasks * num_sequences
    reads_size = cell.num_reads * cell.word_size
    # The controller reads [x_t, r_{t-1}]: x's part of the kernel for every step at once
    # (split and unstacked once, as in _lstm).
    input_kernel, read_kernel = tf.split(kernel, [input_size, reads_size], axis=1)
    projected = tf.unstack(_dense(x, input_kernel, bias), axis=2)
    zeros = lambda *shape: tf.zeros([*shape], x.dtype)
    h = c = zeros(num_tasks, num_sequences, cell.controller_units)
    memory = zeros(batch, cell.memory_size, cell.word_size)
    usage = zeros(batch, cell.memory_size)
    read_weights = zeros(batch, cell.num_reads, cell.memory_size)
    reads = zeros(num_tasks, num_sequences, reads_size)
    outputs = []
    for step_input in projected:
      z = (step_input + tf.matmul(reads, read_kernel)
           + tf.matmul(h, recurrent))
      h, c = _lstm_gates(z, c)
      keys = tf.reshape(tf.tanh(_dense(h, key_kernel, key_bias)),
                        [batch, cell.num_reads, cell.word_size])
      gate_logits = tf.reshape(_dense(h, gate_kernel, gate_bias), [batch, cell.num_reads])
      strengths = (None if strength is None else
                   tf.reshape(1.0 + tf.nn.softplus(_dense(h, *strength)),
                              [batch, cell.num_reads]))
      read_vectors, memory, usage, read_weights = access.lrua_step(
          memory, usage, read_weights, keys, gate_logits, strengths,
          usage_decay=cell.usage_decay)
      reads = tf.reshape(read_vectors, [num_tasks, num_sequences, reads_size])
      if cell.zero_reads:
        reads = tf.zeros_like(reads)
      outputs.append(_dense(tf.concat([h, reads], axis=-1), output_kernel, output_bias))
    return tf.stack(outputs, axis=2)
