"""The memory-augmented neural network (MANN) of Santoro et al. 2016: an LSTM controller
reading and writing an external memory with least-recently-used access (LRUA).

Per time step t, with memory M, usage w_u, previous read weights w_r and reads r:
  h_t, c_t = LSTM([x_t, r_{t-1}], h_{t-1}, c_{t-1})
  k_t      = tanh(W_k h_t)            one key per read head       [num_reads, word_size]
  alpha_t  = W_a h_t                  write-gate logits           [num_reads]
  w_lu     = least_used_weights(w_u_{t-1}, num_reads)                        (eq. 7)
  w_w_t    = sigma(alpha_t) w_r_{t-1} + (1 - sigma(alpha_t)) w_lu            (eq. 6)
  w_r_t    = content_weights(M_{t-1}, k_t)                                   (eq. 3)
  M_t      = write(M_{t-1}, w_w_t, k_t): wipe the least-used row, add        (eq. 8)
  r_t      = read(M_t, w_r_t)                                                (eq. 4)
  w_u_t    = gamma w_u_{t-1} + w_r_t + w_w_t                                 (eq. 5)
  output_t = W_o [h_t, r_t]
Each write head writes the key of the read head of the same index (Santoro et al.
write the key k_t). The read weights address the memory as it was before the step's
write, as the public reimplementations of the paper do (the paper's text leaves the order
open); the read vector takes the written memory. The memory starts each sequence at zero:
one sequence is one episode, so memory is wiped between episodes by construction.
"""

import contextlib
import math
from typing import Optional

import keras
from keras import ops

from mann.memory import access


@keras.saving.register_keras_serializable(package="mann")
class MANNCell(keras.layers.Layer):
  """One step of the MANN, for keras.layers.RNN. Inputs [B, D]; outputs [B, num_outputs].

  State: h [B, units], c [B, units], memory [B, memory_size * word_size],
  usage [B, memory_size], read weights [B, num_reads * memory_size],
  reads [B, num_reads * word_size] (flattened so that Keras's RNN can carry them).

  Under a mixed-precision policy (e.g. mixed_bfloat16) the controller and the heads
  compute in the 16-bit type, as Keras layers do, while the cell itself computes in the
  variables' dtype (float32): the memory, usage and read weights, the addressing that
  updates them, the controller's gates and cell state (its matmuls are 16-bit), and the
  state Keras's RNN carries between steps. bfloat16 keeps 8 bits of mantissa, too few
  for cosine similarities that must tell 128 rows apart, for usages that decay by 0.95
  a step, and for a cell state summed over an episode.
  """

  def __init__(
    self,
    *,
    num_outputs: int,
    controller_units: int = 200,
    memory_size: int = 128,
    word_size: int = 40,
    num_reads: int = 4,
    usage_decay: float = 0.95,
    key_strength: bool = False,
    zero_reads: bool = False,
    reads_only_output: bool = False,
    **kwargs,
  ):
    """key_strength: learn a sharpness beta_t = 1 + softplus(W_b h_t) per read head, as
    the NTM does (Graves et al. 2014); False keeps Santoro et al.'s equation (3),
    softmax of the cosine similarities, whose weights over many rows stay broad
    (cosines lie in [-1, 1]).
    zero_reads: an ablation: every read vector is zero, as if read from a memory wiped at
    each step, so that the controller and the output see no memory; the weights are the
    same as without it (a trained MANN's checkpoint loads).
    reads_only_output: the output layer reads the read vectors alone, output_t = W_o r_t,
    not [h_t, r_t]: whatever the network predicts must come back out of the memory
    (with zero_reads it predicts its bias alone)."""
    # The sublayers take the policy; the cell, whose compute dtype is the one Keras's RNN
    # casts the state to, computes in the variables' dtype (see the class docstring).
    policy = keras.dtype_policies.get(kwargs.pop("dtype", None) or keras.config.dtype_policy())
    super().__init__(dtype=policy.variable_dtype, autocast=False, **kwargs)
    self._layers_policy = policy
    self.num_outputs = num_outputs
    self.controller_units = controller_units
    self.memory_size = memory_size
    self.word_size = word_size
    self.num_reads = num_reads
    self.usage_decay = usage_decay
    self.zero_reads = zero_reads
    self.reads_only_output = reads_only_output
    self.key_strength = key_strength
    self.controller = keras.layers.LSTMCell(controller_units, name="controller", dtype=policy)
    self.key_layer = keras.layers.Dense(
      num_reads * word_size, activation="tanh", name="keys", dtype=policy
    )
    self.gate_layer = keras.layers.Dense(num_reads, name="write_gates", dtype=policy)
    self.output_layer = keras.layers.Dense(num_outputs, name="output", dtype=policy)
    self.strength_layer = (
      keras.layers.Dense(num_reads, name="key_strengths", dtype=policy) if key_strength else None
    )
    self.state_size = [
      controller_units,
      controller_units,
      memory_size * word_size,
      memory_size,
      num_reads * memory_size,
      num_reads * word_size,
    ]
    self.output_size = num_outputs

  def get_config(self):
    return {
      **super().get_config(),
      "dtype": keras.dtype_policies.serialize(self._layers_policy),
      "num_outputs": self.num_outputs,
      "controller_units": self.controller_units,
      "memory_size": self.memory_size,
      "word_size": self.word_size,
      "num_reads": self.num_reads,
      "usage_decay": self.usage_decay,
      "key_strength": self.key_strength,
      "zero_reads": self.zero_reads,
      "reads_only_output": self.reads_only_output,
    }

  def build(self, input_shape):
    self.controller.build((input_shape[0], input_shape[-1] + self.num_reads * self.word_size))
    self.key_layer.build((input_shape[0], self.controller_units))
    self.gate_layer.build((input_shape[0], self.controller_units))
    if self.strength_layer is not None:
      self.strength_layer.build((input_shape[0], self.controller_units))
    reads_size = self.num_reads * self.word_size
    self.output_layer.build(
      (input_shape[0], reads_size + (0 if self.reads_only_output else self.controller_units))
    )
    self.built = True

  def call(self, inputs, states, training=False):
    h, c, memory, usage, read_weights, reads = states
    batch = ops.shape(inputs)[0]
    memory = ops.reshape(memory, (batch, self.memory_size, self.word_size))
    read_weights = ops.reshape(read_weights, (batch, self.num_reads, self.memory_size))
    controller_inputs = ops.concatenate([inputs, ops.cast(reads, inputs.dtype)], axis=-1)
    if self._layers_policy.compute_dtype == self.compute_dtype:
      _, (h, c) = self.controller(controller_inputs, [h, c], training=training)
    else:
      h, c = self._mixed_controller_step(controller_inputs, h, c)
    wide = lambda x: ops.cast(x, self.compute_dtype)  # the addressing's precision
    keys = ops.reshape(wide(self.key_layer(h)), (batch, self.num_reads, self.word_size))
    strengths = (
      1.0 + ops.softplus(wide(self.strength_layer(h))) if self.strength_layer is not None else None
    )
    read_vectors, memory, usage, read_weights = access.lrua_step(
      memory,
      usage,
      read_weights,
      keys,
      wide(self.gate_layer(h)),
      strengths,
      usage_decay=self.usage_decay,
    )
    read_vectors = ops.reshape(read_vectors, (batch, self.num_reads * self.word_size))
    if self.zero_reads:
      read_vectors = ops.zeros_like(read_vectors)
    read_features = ops.cast(read_vectors, h.dtype)
    outputs = self.output_layer(
      read_features if self.reads_only_output else ops.concatenate([h, read_features], axis=-1)
    )
    new_states = [
      wide(h),
      wide(c),
      ops.reshape(memory, (batch, -1)),
      usage,
      ops.reshape(read_weights, (batch, -1)),
      read_vectors,
    ]
    return outputs, new_states

  def _mixed_controller_step(self, x, h, c):
    """The controller's LSTM step under a mixed policy: its two matmuls in the 16-bit
    type, the gates and the cell state in float32 (Keras's LSTMCell would round c to
    bfloat16 at every step, an error that compounds along the episode).

    x [B, D + reads] (16-bit), h and c [B, units] (float32) -> new h, c (float32); the
    controller's own weights, so checkpoints are those of the float32 cell.
    """
    cell = self.controller
    low = self._layers_policy.compute_dtype
    product = lambda a, kernel: ops.cast(
      ops.matmul(ops.cast(a, low), ops.cast(kernel, low)), self.compute_dtype
    )
    z = product(x, cell.kernel) + product(h, cell.recurrent_kernel)
    if cell.use_bias:
      z = z + ops.cast(cell.bias, self.compute_dtype)
    input_gate, forget_gate, candidate, output_gate = ops.split(z, 4, axis=-1)  # Keras's order
    c = cell.recurrent_activation(forget_gate) * c + cell.recurrent_activation(
      input_gate
    ) * cell.activation(candidate)
    h = cell.recurrent_activation(output_gate) * cell.activation(c)
    return h, c


def mann(
  *,
  num_classes: int,
  input_size: int,
  controller_units: int = 200,
  memory_size: int = 128,
  word_size: int = 40,
  num_reads: int = 4,
  usage_decay: float = 0.95,
  key_strength: bool = False,
  zero_reads: bool = False,
  reads_only_output: bool = False,
  encoder: Optional[keras.Model] = None,
  image_shape: Optional[tuple[int, ...]] = None,
  name: str = "mann",
) -> keras.Model:
  """A MANN over sequences: [B, T, input_size] -> logits [B, T, num_classes].

  input_size counts everything fed per step: a flattened image, then a label vector.
  With an encoder (e.g. models.conv4_features) the image part of each step, reshaped
  to image_shape, is encoded first and the controller reads [features, label];
  without one it reads the pixels. Memory, usage and reads start at zero for every
  sequence (episode). key_strength, zero_reads, reads_only_output: see MANNCell. Runs
  through stateless_call like every other model.
  """
  cell = MANNCell(
    num_outputs=num_classes,
    controller_units=controller_units,
    memory_size=memory_size,
    word_size=word_size,
    num_reads=num_reads,
    usage_decay=usage_decay,
    key_strength=key_strength,
    zero_reads=zero_reads,
    reads_only_output=reads_only_output,
    name="mann_cell",
  )
  return _sequence_model(
    [keras.layers.RNN(cell, return_sequences=True, name="rnn")],
    input_size=input_size,
    encoder=encoder,
    image_shape=image_shape,
    name=name,
  )


def memory_cells(model: keras.Model) -> list[MANNCell]:
  """The MANN cells inside `model` ([] for a model without an external memory)."""
  return [layer for layer in model._flatten_layers() if isinstance(layer, MANNCell)]


@contextlib.contextmanager
def reads_zeroed(model: keras.Model):
  """Within the block, every MANN cell of `model` reads zeros (the zero_reads ablation of
  mann(), same weights); functions traced within it keep the ablation, later traces do
  not. Put back as it was on leaving.

  Raises:
    ValueError: the model has no MANN cell.
  """
  cells = memory_cells(model)
  if not cells:
    raise ValueError(f"{model.name} has no external memory whose reads could be zeroed")
  before = [cell.zero_reads for cell in cells]
  for cell in cells:
    cell.zero_reads = True
  try:
    yield
  finally:
    for cell, value in zip(cells, before):
      cell.zero_reads = value


def lstm(
  *,
  num_classes: int,
  input_size: int,
  units: int = 200,
  encoder: Optional[keras.Model] = None,
  image_shape: Optional[tuple[int, ...]] = None,
  name: str = "lstm",
) -> keras.Model:
  """The memoryless baseline with mann's interface: an LSTM and a linear head,
  [B, T, input_size] -> logits [B, T, num_classes]; encoder as in mann."""
  return _sequence_model(
    [
      keras.layers.LSTM(units, return_sequences=True, name="lstm"),
      keras.layers.Dense(num_classes, name="logits"),
    ],
    input_size=input_size,
    encoder=encoder,
    image_shape=image_shape,
    name=name,
  )


@keras.saving.register_keras_serializable(package="mann")
class StepEncoder(keras.layers.Layer):
  """Encodes the image of every step: [B, L, H, W, C] -> features [B, L, F].

  One call of the encoder on all B*L images, so that its batch norm (in training mode)
  normalises over all of them; keras.layers.TimeDistributed calls the encoder once per
  step, which would normalise each step over the B sequences alone (over one image,
  when a single sequence is fed).
  """

  def __init__(self, encoder: keras.Model, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder

  def get_config(self):
    return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder)}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
    return cls(**config)

  def call(self, images, training=None):
    shape = ops.shape(images)
    features = self.encoder(ops.reshape(images, (-1, *images.shape[2:])), training=training)
    return ops.reshape(features, (shape[0], shape[1], features.shape[-1]))

  def compute_output_shape(self, input_shape):
    return (*input_shape[:2], self.encoder.output_shape[-1])


@keras.saving.register_keras_serializable(package="mann")
class LastAxisSlice(keras.layers.Layer):
  """x[..., start:stop]: a step's pixels, or its label part. A layer with a config (a
  Lambda would do the same, but Keras's safe-mode loading refuses Lambda layers)."""

  def __init__(self, start: int = 0, stop: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    self.start, self.stop = start, stop

  def get_config(self):
    return {**super().get_config(), "start": self.start, "stop": self.stop}

  def call(self, x):
    return x[..., self.start : self.stop]

  def compute_output_shape(self, input_shape):
    size = input_shape[-1]
    width = None if size is None else len(range(size)[self.start : self.stop])
    return (*input_shape[:-1], width)


def _sequence_model(core: list, *, input_size, encoder, image_shape, name) -> keras.Model:
  """Input [B, T, input_size] -> (encoder over each step's image) -> core layers."""
  if encoder is None:
    return keras.Sequential([keras.Input((None, input_size))] + core, name=name)
  if image_shape is None:
    raise ValueError("an encoder needs the image_shape of the flattened images")
  pixels = math.prod(image_shape)
  inputs = keras.Input((None, input_size))
  images = keras.layers.Reshape((-1, *image_shape), name="images")(
    LastAxisSlice(0, pixels, name="pixels")(inputs)
  )
  labels = LastAxisSlice(pixels, name="labels")(inputs)
  features = StepEncoder(encoder, name="encoder")(images)
  x = keras.layers.Concatenate(name="features_and_labels")([features, labels])
  for layer in core:
    x = layer(x)
  return keras.Model(inputs, x, name=name)
