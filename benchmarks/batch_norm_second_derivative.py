r"""MAML's meta-gradient with batch norm's second derivative in closed form or TF's, in turns.

  python -m benchmarks.batch_norm_second_derivative --out=results/batch_norm_second_derivative.json

The task-batched conv4 normalises in TF's fused kernels. A second-order meta-gradient
differentiates the fused gradient kernel once more: TF's registered gradient of it
recomputes the first derivative op by op in float32 and differentiates that composite
with a tape; mann.models.batch_norm.fused_batch_norm_training gives the same derivative
in closed form (one more fused gradient kernel and a few elementwise passes). In one
process per command, for each setting and order, conv4 MAML's compute_gradients
(task_mapping="batched", as the trainer calls it) traced two ways:

  closed_form:   the library as it is;
  tf_composite:  as at the commit before it (0ccce3d..5cdf423): TF's fused batch norm,
                 whose second derivative is TF's, and the conv bias added by
                 tf.nn.bias_add (whose gradient is a BiasAddGrad), patched in while
                 that function is traced.

Reported: each one's trace, first call and median of --repeats calls taken in turns
(ABAB..., then BABA...), closed_over_composite (the ratio of medians), and the two
meta-gradients' relative difference, and each one's against task_mapping="map_fn" (Keras
per task) on the same batch, the spread of two computations of it (conv biases left out:
batch norm cancels them, their gradient is round-off). Omniglot-sized random inputs,
inner lr 0.4, one inner step.
"""

import contextlib
from typing import Any
from unittest import mock

from absl import app
from absl import flags

from benchmarks import interleaved
from benchmarks import report as report_lib

SETTINGS = flags.DEFINE_list(
  "settings",
  ["5:1:1:32", "5:1:15:32"],
  "ways:shots:queries_per_class:meta_batch_size for each setting (one inner step).",
)
ORDERS = flags.DEFINE_list(
  "orders",
  ["second", "first"],
  "Meta-gradient orders: second, first (first order has no second derivative; it shows "
  "what the bias gradient's matmul costs against BiasAddGrad).",
)
REPEATS = flags.DEFINE_integer("repeats", 16, "Timed calls of each variant.", lower_bound=2)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
PRECISION = flags.DEFINE_enum(
  "precision", "float32", ["float32", "mixed_bfloat16"], "Keras's dtype policy of the models."
)
SHARED_FIRST_STEP = flags.DEFINE_boolean(
  "shared_first_step", False, "Both variants with shared_first_step=True."
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def _tf_composite_batch_norm(x, scale, offset, *, epsilon):
  """fused_batch_norm_training's outputs from TF's fused op, differentiated by TF."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  y, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
    x, scale, offset, epsilon=epsilon, data_format="NHWC", is_training=True
  )
  count = x.shape[0] * x.shape[1] * x.shape[2]
  return y, mean, corrected_variance * ((count - 1) / count)


@contextlib.contextmanager
def _as_before():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann.models import batch_norm  # pylint: disable=g-import-not-at-top
  from mann.models import task_batched  # pylint: disable=g-import-not-at-top

  with (
    mock.patch.object(batch_norm, "fused_batch_norm_training", _tf_composite_batch_norm),
    mock.patch.object(task_batched, "_add_bias", tf.nn.bias_add),
  ):
    yield


def _maml(ways, task_mapping, first_order):
  return interleaved.conv4_maml(
    ways,
    precision=PRECISION.value,
    task_mapping=task_mapping,
    first_order=first_order,
    shared_first_step=SHARED_FIRST_STEP.value and task_mapping == "batched",
  )


def _compare(batch, ways, first_order) -> dict:
  """Both variants' agreement, trace, first call and time per call on one batch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  learners = {name: _maml(ways, "batched", first_order) for name in ("closed", "composite")}

  def traced(name, context):
    def meta_gradients(b):
      with context():  # the Python body runs only while tracing
        return learners[name].compute_gradients(b)[0]

    return tf.function(meta_gradients, autograph=False)

  functions = {
    "closed_form": traced("closed", contextlib.nullcontext),
    "tf_composite": traced("composite", _as_before),
  }
  result: dict[str, Any]
  result, values = interleaved.time_in_turns(functions, batch, REPEATS.value)
  per_task = _maml(ways, "map_fn", first_order)
  values["map_fn"] = interleaved.meta_gradients_of(per_task, batch)
  relative = interleaved.meta_gradient_difference(learners["closed"].model)
  result["relative_difference"] = relative(values["closed_form"], values["tf_composite"])
  result["closed_form_relative_difference_to_map_fn"] = relative(
    values["closed_form"], values["map_fn"]
  )
  result["tf_composite_relative_difference_to_map_fn"] = relative(
    values["tf_composite"], values["map_fn"]
  )
  result["closed_over_composite"] = (
    result["closed_form"]["seconds_per_call"] / result["tf_composite"]["seconds_per_call"]
  )
  return result


def main(argv):
  del argv
  rows = interleaved.rows_by_setting(SETTINGS.value, ORDERS.value, SEED.value, _compare)
  report = {
    "repeats": REPEATS.value,
    "inner_lr": interleaved.INNER_LR,
    "precision": PRECISION.value,
    "shared_first_step": SHARED_FIRST_STEP.value,
  }
  report_lib.emit({**report, "results": rows}, OUT.value)


if __name__ == "__main__":
  app.run(main)
