"""The sequence models (models.mann, models.lstm) run for T tasks at once, each with its
own weights: what mann.models.task_batched does for conv4, for the MANN and the LSTM.

A gradient-based meta-learner over a sequence model adapts a copy of its weights per
task. Mapping a per-task RNN over the tasks (tf.map_fn) runs T recurrences one after
the other, each a loop of small ops; here the T recurrences run as one, step by step:

  encoder (conv4 features): mann.models.task_batched.TaskBatchedModel, grouped
    convolutions over all images of all tasks;
  recurrent kernels (the controller's, its key / gate / strength heads', the LSTM's):
    per task [T, D, U] tensors, or, in MAML's inner loop, low_rank.LowRankKernel: the
    shared initialisation plus the inner steps' low-rank updates, so a step is one
    GEMM for all tasks plus products of the support set's width (per-task kernels
    read at every step cost 2.5x conv4's meta-step, these 1.9x: results/);
  memory access: the weight-free equations of mann.memory.access on the T*S sequences
    flattened into one batch;
  heads: batched matmuls.

Query sequences share the support set as their prefix: branched_call runs it once per
task and continues each query from its state (the encoder's batch-norm moments
counting each prefix image once per sequence, so the numbers are the repeated ones).

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
from mann.models import low_rank
from mann.models import task_batched
from mann.models import task_engine
from mann.models.recurrent import MANNCell


def unsupported_reason(model: keras.Model) -> Optional[str]:
  """None when TaskBatchedSequenceModel can run `model` (built by models.mann or
  models.lstm), else why not (one line)."""
  names = {layer.name for layer in model.layers}
  if any(layer.compute_dtype in ("bfloat16", "float16") for layer in model.layers):
    # Its recurrence computes in the weights' dtype; the Keras layers (MANNCell) keep the
    # mixed-precision rules, so a learner maps the tasks through them instead.
    return f"{model.name} computes in mixed precision, which the batched recurrence has not"
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


def _dense(x: tf.Tensor, kernel, bias: tf.Tensor) -> tf.Tensor:
  """x [T, ..., D] through per-task kernel [T, D, U] (or a low_rank.LowRankKernel) and
  bias [T, U] -> [T, ..., U].

  One batched matmul of x folded to [T, B, D]: the gradient of an einsum with an
  ellipsis ("t...d,tdu->t...u") goes through an [T, ..., D, U] broadcast, 40x slower.
  """
  lead = x.shape[1:-1]
  y = low_rank.matmul(tf.reshape(x, [x.shape[0], -1, x.shape[-1]]), kernel) + bias[:, None, :]
  return tf.reshape(y, [x.shape[0], *lead, kernel.shape[-1]])


def _lstm_gates(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Keras LSTMCell's update from the pre-activations z [..., 4U] (gates i, f, c, o)."""
  i, f, g, o = tf.split(z, 4, axis=-1)
  c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
  return tf.sigmoid(o) * tf.tanh(c), c


class TaskBatchedSequenceModel(task_engine.BranchedTaskEngine):
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
      self._encoder_statistics = [
        statistic_position[id(w)] for w in encoder.non_trainable_variables
      ]
      self._image_shape = tuple(model.get_layer("images").target_shape[1:])
      self._pixels = math.prod(self._image_shape)
    if "rnn" in names:
      self._cell = cell = model.get_layer("rnn").cell
      self._core = self._mann
      recurrent_layers = [cell.controller, cell.key_layer, cell.gate_layer]
      if cell.strength_layer is not None:
        recurrent_layers.append(cell.strength_layer)
    else:
      self._lstm_weights = self._indices(model.get_layer("lstm"))
      self._head_weights = self._indices(model.get_layer("logits"))
      self._core = self._lstm
      recurrent_layers = [model.get_layer("lstm")]
    # The kernels multiplied at every step (LSTMCell: kernel, recurrent_kernel; Dense:
    # kernel): the ones worth keeping as low-rank updates of the initialisation.
    low_rank_ids = {
      id(w) for layer in recurrent_layers for w in layer.trainable_weights if w.shape.rank == 2
    }
    self.low_rank_weights = [id(w) in low_rank_ids for w in model.trainable_weights]

  def task_weights(self, weights: list[tf.Tensor], num_tasks: int) -> list:
    """The initial weights of T tasks: the kernels of low_rank_weights as
    low_rank.LowRankKernel (no update yet), the others broadcast to [T, *shape]."""
    return [
      low_rank.LowRankKernel(w, num_tasks)
      if is_low_rank
      else tf.broadcast_to(w[None], [num_tasks, *w.shape])
      for w, is_low_rank in zip(weights, self.low_rank_weights)
    ]

  def stateless_call(
    self, weights: list[tf.Tensor], non_trainable: list[tf.Tensor], x: tf.Tensor, *, training: bool
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """Args:
      weights: model.trainable_weights' values with a leading task axis, [T, *shape];
        any of low_rank_weights may be a low_rank.LowRankKernel instead.
      non_trainable: model.non_trainable_variables' values (the encoder's batch-norm
        statistics; the LSTM's unused dropout seed), shared by the tasks.
      x: [T, S, L, input_size]: S sequences of L steps per task.
      training: batch-norm mode of the encoder.

    Returns:
      logits [T, S, L, num_classes], and the non-trainable weights as each task's pass
      leaves them, [T, *shape].
    """
    num_tasks, num_sequences, length = x.shape[:3]
    features, new_statistics = self._encode(
      weights,
      non_trainable,
      tf.reshape(x, [num_tasks, num_sequences * length, -1]),
      training=training,
    )
    features = tf.reshape(features, [num_tasks, num_sequences, length, -1])
    return self._core(weights, features)[0], new_statistics

  def branched_call(
    self,
    weights: list[tf.Tensor],
    non_trainable: list[tf.Tensor],
    prefix: tf.Tensor,
    branches: tf.Tensor,
    *,
    training: bool,
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """S sequences that share a prefix, the prefix run once.

    Equal to stateless_call on the S sequences [prefix; branch j] (the last Lb steps'
    logits, the same statistics): the recurrence runs the prefix once per task and
    continues each branch from its state, and the encoder sees each prefix image once,
    its batch-norm moments counting it S times (once per sequence it stands in).

    Args:
      weights, non_trainable, training: as stateless_call's.
      prefix: [T, Lp, input_size], the steps every sequence of a task starts with.
      branches: [T, S, Lb, input_size], each sequence's steps after the prefix.

    Returns:
      logits [T, S, Lb, num_classes] and the non-trainable weights, as stateless_call's.
    """
    num_tasks, num_branches, branch_length = branches.shape[:3]
    prefix_length = prefix.shape[1]
    steps = tf.concat([prefix, tf.reshape(branches, [num_tasks, -1, branches.shape[-1]])], axis=1)
    features, new_statistics = self._encode(
      weights,
      non_trainable,
      steps,
      training=training,
      example_weights=[num_branches] * prefix_length + [1] * (num_branches * branch_length),
    )
    prefix_features, branch_features = tf.split(
      features, [prefix_length, num_branches * branch_length], axis=1
    )
    _, state = self._core(weights, prefix_features[:, None])
    # Every state is [T, 1, ...]: one copy per branch.
    state = tf.nest.map_structure(lambda v: tf.repeat(v, num_branches, axis=1), state)
    branch_features = tf.reshape(branch_features, [num_tasks, num_branches, branch_length, -1])
    return self._core(weights, branch_features, state)[0], new_statistics

  def _encode(self, weights, non_trainable, x, *, training, example_weights=None):
    """The encoder over x [T, B, input_size] -> ([T, B, D] features, statistics [T, ...]).

    Inputs without an encoder are their own features."""
    num_tasks, num_steps = x.shape[:2]
    new_statistics = [tf.tile(v[None], [num_tasks] + [1] * v.shape.rank) for v in non_trainable]
    if self._encoder is None:
      return x, new_statistics
    # tf.split, not slices: a slice's gradient is a zero-padded copy of all of x.
    pixels, labels = tf.split(x, [self._pixels, x.shape[-1] - self._pixels], axis=-1)
    images = tf.reshape(pixels, [num_tasks, num_steps, *self._image_shape])
    features, encoder_statistics = self._encoder.stateless_call(
      [weights[i] for i in self._encoder_weights],
      [non_trainable[i] for i in self._encoder_statistics],
      images,
      training=training,
      example_weights=example_weights,
    )
    for i, value in zip(self._encoder_statistics, encoder_statistics):
      new_statistics[i] = value
    return tf.concat(
      [tf.reshape(features, [num_tasks, num_steps, -1]), labels], axis=-1
    ), new_statistics

  def _lstm(self, weights, x, state=None):
    """The LSTM baseline's core and head: x [T, S, L, D] -> (logits [T, S, L, N], state).

    state: (h, c), each [T, S, U], to continue from (None: zeros)."""
    kernel, recurrent, bias = (weights[i] for i in self._lstm_weights)
    # Every step's input part at once, unstacked once: a slice per step would have a
    # gradient per step the size of all steps (0.5 s of a 2 s MANN step, profiled).
    projected = tf.unstack(_dense(x, kernel, bias), axis=2)
    if state is None:
      zeros = tf.zeros([*x.shape[:2], recurrent.shape[-1] // 4], x.dtype)
      state = (zeros, zeros)
    h, c = state
    outputs = []
    for step_input in projected:
      h, c = _lstm_gates(step_input + low_rank.matmul(h, recurrent), c)
      outputs.append(h)
    logits = _dense(tf.stack(outputs, axis=2), *(weights[i] for i in self._head_weights))
    return logits, (h, c)

  def _mann(self, weights, x, state=None):
    """The MANN cell over x [T, S, L, D] -> (logits [T, S, L, N], state), MANNCell.call's
    steps.

    state: (h, c [T, S, U], memory [T, S, M, W], usage [T, S, M], read weights
    [T, S, R, M], reads [T, S, R*W]) to continue from (None: the cell's zero state)."""
    cell = self._cell
    layer_weights = lambda layer: [weights[i] for i in self._indices(layer)]
    kernel, recurrent, bias = layer_weights(cell.controller)
    heads = [layer_weights(cell.key_layer), layer_weights(cell.gate_layer)]
    if cell.strength_layer is not None:
      heads.append(layer_weights(cell.strength_layer))
    output_kernel, output_bias = layer_weights(cell.output_layer)
    num_tasks, num_sequences = x.shape[:2]
    batch = num_tasks * num_sequences
    reads_size = cell.num_reads * cell.word_size
    if state is None:
      zeros = lambda *shape: tf.zeros([num_tasks, num_sequences, *shape], x.dtype)
      state = (
        zeros(cell.controller_units),
        zeros(cell.controller_units),
        zeros(cell.memory_size, cell.word_size),
        zeros(cell.memory_size),
        zeros(cell.num_reads, cell.memory_size),
        zeros(reads_size),
      )
    # The memory access runs on the T*S sequences flattened into one batch.
    h, c, memory, usage, read_weights, reads = state
    memory, usage, read_weights = (
      tf.reshape(v, [batch, *v.shape[2:]]) for v in (memory, usage, read_weights)
    )
    outputs = []
    # Unstacked once: a slice per step would have a gradient the size of all steps.
    for step_input in tf.unstack(x, axis=2):
      # The controller reads [x_t, r_{t-1}] (its kernels are low-rank per task in
      # MAML's inner loop: a shared GEMM per step, see mann.models.low_rank).
      z = (
        low_rank.matmul(tf.concat([step_input, reads], axis=-1), kernel)
        + low_rank.matmul(h, recurrent)
        + bias[:, None, :]
      )
      h, c = _lstm_gates(z, c)
      key_logits, gate_logits, *strength_logits = [_dense(h, *head) for head in heads]
      keys = tf.reshape(tf.tanh(key_logits), [batch, cell.num_reads, cell.word_size])
      gate_logits = tf.reshape(gate_logits, [batch, cell.num_reads])
      strengths = (
        tf.reshape(1.0 + tf.nn.softplus(strength_logits[0]), [batch, cell.num_reads])
        if strength_logits
        else None
      )
      read_vectors, memory, usage, read_weights = access.lrua_step(
        memory, usage, read_weights, keys, gate_logits, strengths, usage_decay=cell.usage_decay
      )
      reads = tf.reshape(read_vectors, [num_tasks, num_sequences, reads_size])
      if cell.zero_reads:
        reads = tf.zeros_like(reads)
      outputs.append(reads if cell.reads_only_output else tf.concat([h, reads], axis=-1))
    memory, usage, read_weights = (
      tf.reshape(v, [num_tasks, num_sequences, *v.shape[1:]]) for v in (memory, usage, read_weights)
    )
    # The output layer is not recurrent: every step's at once.
    logits = _dense(tf.stack(outputs, axis=2), output_kernel, output_bias)
    return logits, (h, c, memory, usage, read_weights, reads)
