"""Which part of a model each weight belongs to: the image encoder, the recurrent
controller, or the output head. Names what an inner loop may adapt (ANIL's question:
only the head?) for the models of this package."""

import keras

GROUPS = ("encoder", "controller", "head")


def weight_groups(model: keras.Model) -> list[str]:
  """One of GROUPS per weight of model.trainable_weights, in that order.

  Sequence models (models.mann, models.lstm): the conv4 encoder's weights are
  "encoder"; the output layer's (the MANN cell's output, the LSTM's logits) "head";
  the rest of the recurrent core (LSTM, key, gate and key-strength layers)
  "controller". Feed-forward models (conv4, mlp): the last Dense layer is the "head",
  everything before it the "encoder" (ANIL's body).
  """
  names = {layer.name for layer in model.layers}
  owner: dict[int, str] = {}

  def mark(layer, group):
    for weight in layer.trainable_weights:
      owner.setdefault(id(weight), group)

  if "rnn" in names or "lstm" in names:
    if "encoder" in names:
      mark(model.get_layer("encoder"), "encoder")
    if "rnn" in names:
      mark(model.get_layer("rnn").cell.output_layer, "head")
      mark(model.get_layer("rnn"), "controller")
    else:
      mark(model.get_layer("logits"), "head")
      mark(model.get_layer("lstm"), "controller")
  else:
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
      raise ValueError(f"{model.name} has no Dense head")
    mark(dense[-1], "head")
    for layer in model.layers:
      mark(layer, "encoder")
  return [owner[id(w)] for w in model.trainable_weights]


def adapted_weights(model: keras.Model, group: str) -> list[bool]:
  """Per weight, whether it belongs to `group` ("all" or one of GROUPS).

  Raises:
    ValueError: the model has no weight in that group (e.g. "controller" of conv4).
  """
  if group == "all":
    return [True] * len(model.trainable_weights)
  if group not in GROUPS:
    raise ValueError(f"group must be 'all' or one of {GROUPS}, got {group!r}")
  mask = [g == group for g in weight_groups(model)]
  if not any(mask):
    present = sorted(set(weight_groups(model)))
    raise ValueError(f"{model.name} has no {group} weights (it has: {', '.join(present)})")
  return mask
