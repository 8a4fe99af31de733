"""Two or more traced functions of one argument timed in turns, as the A/B benchmarks
(inner_step_tracing, shared_first_step, batch_norm_second_derivative) time their
variants: each traced and called once on its own, then called in turns (ABAB..., then
BABA...) so that the shared machine's drift falls on all alike; their rows, one per
setting and meta-gradient order (rows_by_setting); and the conv4 MAML they compare
(conv4_maml)."""

import statistics
import time

INNER_LR = 0.4  # the A/B benchmarks' conv4 MAML: one inner step at Omniglot's rate


def time_in_turns(functions: dict, argument, repeats: int) -> tuple[dict, dict]:
  """functions: name -> tf.function of `argument`.

  Returns ({name: trace_seconds, first_call_seconds, seconds_per_call (median of
  `repeats` calls)}, {name: the first call's outputs as NumPy arrays, flattened})."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  fetch = lambda outputs: [value.numpy() for value in tf.nest.flatten(outputs)]
  result, values = {}, {}
  for name, function in functions.items():
    started = time.perf_counter()
    function.get_concrete_function(argument)
    traced = time.perf_counter() - started
    started = time.perf_counter()
    values[name] = fetch(function(argument))
    result[name] = {"trace_seconds": traced, "first_call_seconds": time.perf_counter() - started}
  names = list(functions)
  times: dict[str, list[float]] = {name: [] for name in names}
  for call in range(repeats):
    for name in names if call % 2 == 0 else reversed(names):
      started = time.perf_counter()
      fetch(functions[name](argument))
      times[name].append(time.perf_counter() - started)
  for name in names:
    result[name]["seconds_per_call"] = statistics.median(times[name])
  return result, values


def rows_by_setting(settings, orders, seed: int, compare) -> list[dict]:
  """One row per setting and meta-gradient order, each setting on its own random batch.

  settings: "ways:shots:queries_per_class:meta_batch_size" strings; orders: "second"
  and/or "first"; compare: (batch, ways, first_order) -> {figure: value}, the row's
  measurements. Each row is printed as it is made (a long run shows its progress)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from benchmarks import inputs  # pylint: disable=g-import-not-at-top

  rows = []
  for setting in settings:
    ways, shots, queries, tasks = (int(field) for field in setting.split(":"))
    tf.random.set_seed(seed)
    batch = inputs.random_meta_batch(ways, shots, queries, tasks)
    fields = dict(ways=ways, shots=shots, queries_per_class=queries, meta_batch_size=tasks)
    for order in orders:
      rows.append({**fields, "order": order, **compare(batch, ways, order == "first")})
      print(rows[-1], flush=True)
  return rows


def meta_gradient_difference(model):
  """(got, want) -> the relative difference of two meta-gradients of `model`'s
  trainable variables (lists of arrays in their order), in float64, conv biases left
  out: each is followed by batch norm, which cancels it, so its gradient is round-off."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  conv_biases = {id(layer.bias) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
  kept = [i for i, v in enumerate(model.trainable_variables) if id(v) not in conv_biases]

  def relative(got, want) -> float:
    flat = lambda values: np.concatenate([np.ravel(values[i]).astype(np.float64) for i in kept])
    difference = flat(got) - flat(want)
    return float(np.linalg.norm(difference) / np.linalg.norm(flat(want)))

  return relative


def meta_gradients_of(learner, batch) -> list:
  """learner.compute_gradients(batch)'s meta-gradients, traced, as NumPy arrays."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  meta_gradients = tf.function(lambda b: learner.compute_gradients(b)[0], autograph=False)
  return [g.numpy() for g in meta_gradients(batch)]


def conv4_maml(ways, *, precision, task_mapping, first_order, shared_first_step=False):
  """conv4 MAML (one inner step at INNER_LR) under Keras's `precision` dtype policy, with
  the same initial weights at every call, so that variants built in turns compare."""
  import keras  # pylint: disable=g-import-not-at-top

  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import models  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)  # the same initial weights for every learner
  keras.config.set_dtype_policy(precision)  # before the model: its layers keep it
  return meta.MAML(
    models.conv4(num_classes=ways),
    objective=meta.CLASSIFICATION,
    num_inner_steps=1,
    inner_lr=INNER_LR,
    first_order=first_order,
    task_mapping=task_mapping,
    shared_first_step=shared_first_step,
  )
