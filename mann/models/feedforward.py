"""A multilayer perceptron: the MAML paper's sinusoid regressor (40-40 ReLU)."""

from typing import Sequence

import keras


def mlp(
  *,
  input_size: int = 1,
  hidden_sizes: Sequence[int] = (40, 40),
  output_size: int = 1,
  name: str = "mlp",
) -> keras.Model:
  """Dense layers with ReLU between them and a linear output.

  Args:
    input_size: D_in, features of one input.
    hidden_sizes: widths of the hidden layers, (40, 40) in the MAML paper.
    output_size: D_out, outputs (1 for regression, N for N-way classification).
    name: the Keras model's name.

  Returns:
    A built keras.Model mapping float32 [B, D_in] to [B, D_out].
  """
  layers = [keras.Input(shape=(input_size,))]
  layers += [
    keras.layers.Dense(width, activation="relu", name=f"hidden{i}")
    for i, width in enumerate(hidden_sizes)
  ]
  layers.append(keras.layers.Dense(output_size, name="output"))
  return keras.Sequential(layers, name=name)
