"""Each block's activations of a feed-forward network under given weights (for comparing
representations before and after adaptation)."""

import keras
import tensorflow as tf

_BLOCK_ENDS = (keras.layers.ReLU, keras.layers.Activation)


def feed_forward_part(model: keras.Model) -> tuple[keras.Sequential, list[int], list[int]]:
  """The keras.Sequential network whose blocks are compared: the model itself (conv4,
  mlp) or a sequence model's image encoder; and the positions of its trainable and
  non-trainable weights in the model's lists."""
  names = {layer.name for layer in model.layers}
  network = model.get_layer("encoder").encoder if "encoder" in names else model
  if not isinstance(network, keras.Sequential):
    raise ValueError(
      f"{model.name} has no keras.Sequential network to compare block by "
      f"block (a sequence model without an image encoder)"
    )
  trainable = {id(w): i for i, w in enumerate(model.trainable_weights)}
  other = {id(w): i for i, w in enumerate(model.non_trainable_weights)}
  return (
    network,
    [trainable[id(w)] for w in network.trainable_weights],
    [other[id(w)] for w in network.non_trainable_weights],
  )


def block_activations(
  network: keras.Sequential,
  weights: list[tf.Tensor],
  non_trainable: list[tf.Tensor],
  x: tf.Tensor,
  *,
  training: bool,
) -> dict[str, tf.Tensor]:
  """{layer name: output [B, ...]} after each block (each ReLU / Activation layer) and
  the last layer, running network's layers one by one under `weights` (its
  trainable_weights' values) and `non_trainable`."""
  weights, non_trainable = list(weights), list(non_trainable)
  outputs = {}
  for index, layer in enumerate(network.layers):
    if isinstance(layer, keras.layers.InputLayer):
      continue
    layer_weights = [weights.pop(0) for _ in layer.trainable_weights]
    layer_other = [non_trainable.pop(0) for _ in layer.non_trainable_weights]
    # Keras passes `training` only to layers whose call takes it; so does this.
    kwargs = {"training": training} if layer._call_has_training_arg else {}  # pylint: disable=protected-access
    x, _ = layer.stateless_call(layer_weights, layer_other, x, **kwargs)
    if isinstance(layer, _BLOCK_ENDS) or index == len(network.layers) - 1:
      outputs[layer.name] = x
  return outputs
