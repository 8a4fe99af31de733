"""Tests of mann/models/recurrent.py against a numpy transcription of Santoro et al.'s equations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import models


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _numpy_mann(
  model,
  x,
  memory_size,
  word_size,
  num_reads,
  decay,
  key_strength=False,
  zero_reads=False,
  reads_only_output=False,
):
  """Runs the MANN on x [B, T, D] step by step in numpy; returns logits [B, T, N]."""
  cell = model.get_layer("rnn").cell
  kernel, recurrent, bias = (w.numpy().astype(np.float64) for w in cell.controller.weights)
  key_w, key_b = (w.numpy() for w in cell.key_layer.weights)
  gate_w, gate_b = (w.numpy() for w in cell.gate_layer.weights)
  out_w, out_b = (w.numpy() for w in cell.output_layer.weights)
  if key_strength:
    strength_w, strength_b = (w.numpy() for w in cell.strength_layer.weights)
  batch, steps, _ = x.shape
  units = recurrent.shape[0]
  h, c = np.zeros((batch, units)), np.zeros((batch, units))
  memory = np.zeros((batch, memory_size, word_size))
  usage = np.zeros((batch, memory_size))
  read_weights = np.zeros((batch, num_reads, memory_size))
  reads = np.zeros((batch, num_reads * word_size))
  logits = []
  for t in range(steps):
    z = np.concatenate([x[:, t], reads], -1) @ kernel + h @ recurrent + bias
    i, f, g, o = np.split(z, 4, axis=-1)  # Keras LSTM gate order
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    keys = np.tanh(h @ key_w + key_b).reshape(batch, num_reads, word_size)
    least_used = np.zeros((batch, memory_size))
    for b in range(batch):  # the num_reads smallest usages, lower index first on ties
      least_used[b, np.argsort(usage[b], kind="stable")[:num_reads]] = 1.0
    gate = _sigmoid(h @ gate_w + gate_b)[:, :, None]
    write_weights = gate * read_weights + (1 - gate) * least_used[:, None, :]
    cosine = np.einsum("bhw,bnw->bhn", keys, memory) / (  # the memory before the write
      np.linalg.norm(keys, axis=-1)[:, :, None] * np.linalg.norm(memory, axis=-1)[:, None] + 1e-8
    )
    if key_strength:  # beta = 1 + softplus(W_b h + b_b), one per head
      cosine = cosine * (1.0 + np.log1p(np.exp(h @ strength_w + strength_b)))[:, :, None]
    read_weights = np.exp(cosine) / np.exp(cosine).sum(-1, keepdims=True)
    wipe = np.zeros((batch, memory_size))
    wipe[np.arange(batch), np.argsort(usage, axis=-1, kind="stable")[:, 0]] = 1.0
    memory = memory * (1 - wipe)[:, :, None] + np.einsum("bhn,bhw->bnw", write_weights, keys)
    reads = np.einsum("bhn,bnw->bhw", read_weights, memory).reshape(batch, -1)
    if zero_reads:
      reads = np.zeros_like(reads)
    usage = decay * usage + read_weights.sum(1) + write_weights.sum(1)
    features = reads if reads_only_output else np.concatenate([h, reads], -1)
    logits.append(features @ out_w + out_b)
  return np.stack(logits, axis=1)


@pytest.mark.parametrize("key_strength", [False, True])
def test_mann_matches_the_equations_in_numpy(key_strength):
  model = models.mann(
    num_classes=3,
    input_size=6,
    controller_units=5,
    memory_size=4,
    word_size=3,
    num_reads=2,
    usage_decay=0.9,
    key_strength=key_strength,
  )
  x = np.random.default_rng(0).normal(size=(2, 7, 6)).astype(np.float32)
  got = model(x).numpy()
  assert got.shape == (2, 7, 3)
  np.testing.assert_allclose(
    got, _numpy_mann(model, x, 4, 3, 2, 0.9, key_strength), rtol=1e-4, atol=1e-5
  )


def test_zero_reads_ablation_keeps_the_weights_and_hides_the_memory():
  kwargs = dict(
    num_classes=3,
    input_size=6,
    controller_units=5,
    memory_size=4,
    word_size=3,
    num_reads=2,
    usage_decay=0.9,
  )
  trained, ablated = models.mann(**kwargs), models.mann(**kwargs, zero_reads=True)
  x = np.random.default_rng(5).normal(size=(2, 7, 6)).astype(np.float32)
  ablated(x)
  ablated.set_weights(trained.get_weights())  # same variables: a checkpoint loads
  got = ablated(x).numpy()
  np.testing.assert_allclose(
    got, _numpy_mann(trained, x, 4, 3, 2, 0.9, zero_reads=True), rtol=1e-4, atol=1e-5
  )
  assert not np.allclose(got, trained(x).numpy(), atol=1e-3)  # the reads did matter


def test_reads_zeroed_ablates_a_built_model_in_place_and_puts_it_back():
  kwargs = dict(num_classes=3, input_size=6, controller_units=5, memory_size=4, word_size=3)
  model = models.mann(**kwargs, num_reads=2, usage_decay=0.9)
  x = np.random.default_rng(6).normal(size=(2, 7, 6)).astype(np.float32)
  with_reads = model(x).numpy()
  (cell,) = models.memory_cells(model)
  with models.reads_zeroed(model):
    assert cell.zero_reads
    # A function traced within the block, as the evaluation traces its own.
    zeroed = tf.function(lambda inputs: model(inputs))(x).numpy()
  assert not cell.zero_reads
  np.testing.assert_allclose(
    zeroed, _numpy_mann(model, x, 4, 3, 2, 0.9, zero_reads=True), rtol=1e-4, atol=1e-5
  )
  np.testing.assert_allclose(model(x).numpy(), with_reads, rtol=1e-6)
  lstm = models.lstm(num_classes=3, input_size=6, units=4)
  assert models.memory_cells(lstm) == []
  with pytest.raises(ValueError, match="no external memory"):
    with models.reads_zeroed(lstm):
      pass


def test_memory_is_wiped_between_sequences_and_stateless_call_works():
  model = models.mann(
    num_classes=3, input_size=4, controller_units=8, memory_size=6, word_size=3, num_reads=1
  )
  rng = np.random.default_rng(1)
  first, second = (rng.normal(size=(1, 5, 4)).astype(np.float32) for _ in range(2))
  alone = model(second).numpy()
  model(first)  # a sequence before must leave nothing behind
  np.testing.assert_allclose(model(second), alone, rtol=1e-6)
  both = model(np.concatenate([first, second])).numpy()
  np.testing.assert_allclose(both[1], alone[0], rtol=1e-5, atol=1e-6)
  before = [w.numpy().copy() for w in model.trainable_variables]
  doubled = [2.0 * w.value + 0.1 for w in model.trainable_variables]
  outputs, _ = model.stateless_call(
    doubled, [v.value for v in model.non_trainable_variables], second
  )
  assert not np.allclose(outputs, alone)
  for weight, value in zip(model.trainable_variables, before):
    np.testing.assert_array_equal(weight.numpy(), value)  # variables untouched


def test_every_weight_gets_a_gradient():
  model = models.mann(
    num_classes=3, input_size=4, controller_units=8, memory_size=6, word_size=3, num_reads=2
  )
  x = tf.random.stateless_normal([2, 5, 4], seed=[0, 1])
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(model(x)))
  gradients = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_an_encoder_feeds_each_steps_image_features_and_label_to_the_controller():
  keras.utils.set_random_seed(3)
  image_shape, labels = (8, 8, 1), 3
  encoder = models.conv4_features(image_shape=image_shape, num_filters=2)
  model = models.mann(
    num_classes=3,
    input_size=64 + labels,
    controller_units=5,
    memory_size=4,
    word_size=3,
    num_reads=1,
    encoder=encoder,
    image_shape=image_shape,
  )
  x = np.random.default_rng(4).uniform(size=(2, 5, 64 + labels)).astype(np.float32)
  got = model(x).numpy()
  # The same controller on [encoder(image_t), label_t], built by hand.
  features = encoder(x[..., :64].reshape(10, *image_shape)).numpy().reshape(2, 5, -1)
  plain = models.mann(
    num_classes=3,
    input_size=features.shape[-1] + labels,
    controller_units=5,
    memory_size=4,
    word_size=3,
    num_reads=1,
  )
  plain.get_layer("rnn").set_weights(model.get_layer("rnn").get_weights())
  want = plain(np.concatenate([features, x[..., 64:]], axis=-1)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.square(model(x, training=True)))
  gradients = tape.gradient(loss, model.trainable_variables)
  assert len(gradients) > len(plain.trainable_variables)  # the encoder's weights too
  assert all(g is not None for g in gradients)


def test_lstm_baseline_has_the_same_interface():
  model = models.lstm(num_classes=4, input_size=10, units=6)
  assert model(np.zeros((2, 7, 10), np.float32)).shape == (2, 7, 4)


def _round_trip(layer):
  """The layer rebuilt from its serialized config (Keras's own layer-test check)."""
  return keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


@pytest.mark.parametrize(
  "key_strength, zero_reads, reads_only_output",
  [(False, False, False), (True, True, False), (False, False, True)],
)
def test_mann_cell_round_trips_its_config_and_computes_the_same(
  key_strength, zero_reads, reads_only_output
):
  from mann.models.recurrent import MANNCell  # pylint: disable=g-import-not-at-top

  cell = MANNCell(
    num_outputs=3,
    controller_units=5,
    memory_size=6,
    word_size=2,
    num_reads=2,
    usage_decay=0.9,
    key_strength=key_strength,
    zero_reads=zero_reads,
    reads_only_output=reads_only_output,
    name="cell",
  )
  rnn = keras.layers.RNN(cell, return_sequences=True)
  inputs = np.random.default_rng(0).normal(size=(2, 4, 7)).astype(np.float32)
  expected = rnn(inputs)
  copy = _round_trip(rnn)
  assert copy.cell.get_config() == cell.get_config()
  assert isinstance(copy.cell, MANNCell) and copy.cell.key_strength == key_strength
  copy(inputs)  # builds it
  copy.set_weights(rnn.get_weights())
  np.testing.assert_allclose(copy(inputs), expected, rtol=1e-6, atol=1e-6)


def test_step_encoder_and_batch_norm_round_trip_their_configs():
  from mann.models.recurrent import StepEncoder  # pylint: disable=g-import-not-at-top

  layer = StepEncoder(models.conv4_features(image_shape=(8, 8, 1), num_filters=2), name="enc")
  images = np.random.default_rng(1).uniform(size=(2, 3, 8, 8, 1)).astype(np.float32)
  expected = layer(images, training=False)
  copy = _round_trip(layer)
  assert type(copy) is StepEncoder and copy.name == "enc"
  copy(images, training=False)
  copy.set_weights(layer.get_weights())
  np.testing.assert_allclose(copy(images, training=False), expected, rtol=1e-6, atol=1e-6)
  norm = models.BatchNormalization(momentum=0.5, epsilon=1e-3, name="bn")
  norm_copy = _round_trip(norm)
  assert type(norm_copy) is models.BatchNormalization
  assert norm_copy.get_config() == norm.get_config()


@pytest.mark.parametrize("kind", ["mann", "lstm"])
def test_a_sequence_model_with_its_encoder_saves_and_loads_in_safe_mode(kind, tmp_path):
  encoder = models.conv4_features(image_shape=(8, 8, 1), num_filters=2)
  shared = dict(num_classes=3, input_size=8 * 8 + 3, encoder=encoder, image_shape=(8, 8, 1))
  if kind == "mann":
    model = models.mann(**shared, controller_units=5, memory_size=4, word_size=3, num_reads=1)
  else:
    model = models.lstm(**shared, units=5)
  inputs = np.random.default_rng(2).uniform(size=(2, 4, 8 * 8 + 3)).astype(np.float32)
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)  # refuses Lambda layers
  np.testing.assert_allclose(loaded(inputs), model(inputs), rtol=1e-6, atol=1e-6)


def test_a_reads_only_output_is_the_read_vectors_through_the_output_layer():
  kwargs = dict(num_classes=3, input_size=6, controller_units=5, memory_size=4, word_size=3)
  model = models.mann(**kwargs, num_reads=2, usage_decay=0.9, reads_only_output=True)
  assert model.get_layer("rnn").cell.output_layer.kernel.shape == (2 * 3, 3)
  x = np.random.default_rng(7).normal(size=(2, 7, 6)).astype(np.float32)
  np.testing.assert_allclose(
    model(x).numpy(),
    _numpy_mann(model, x, 4, 3, 2, 0.9, reads_only_output=True),
    rtol=1e-4,
    atol=1e-5,
  )
  # Without its reads such a model predicts its output bias alone, at every step.
  with models.reads_zeroed(model):
    zeroed = model(x).numpy()
  bias = model.get_layer("rnn").cell.output_layer.bias.numpy()
  np.testing.assert_allclose(zeroed, np.broadcast_to(bias, zeroed.shape), rtol=1e-6, atol=1e-7)
