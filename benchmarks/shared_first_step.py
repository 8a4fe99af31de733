r"""MAML's meta-gradient with shared_first_step on and off, in turns, and how they agree.

  python -m benchmarks.shared_first_step --out=results/shared_first_step.json

Every task of a meta-batch starts its inner loop from the same weights, so the first
step's support pass, and the input gradients of its backward pass, need not be grouped
convolutions (T groups, one per task's kernel): with shared_first_step
(mann.models.task_batched.SharedKernel) they are ordinary convolutions over all T*B
support images with the one kernel, and only the kernels' own gradients are per task,
one grouped filter gradient. In one process per command, for each setting and order:

  grouped:  mann.meta.MAML(conv4, task_mapping="batched").compute_gradients, as the
            trainer calls it (with its metrics, task_update_cosine included);
  shared:   the same with shared_first_step=True (no task_update_cosine: the tasks'
            own gradients of the initial kernels are never formed).

Reported: the shared meta-gradient's relative error against the grouped one, and both
against task_mapping="map_fn" on the same batch, the spread of float32 computations of
it (conv biases left out: batch norm cancels them, their gradient is round-off); each
one's trace, first call and median of --repeats calls taken in turns (ABAB..., then
BABA...), and shared_over_grouped, the ratio of medians. Float32 (or --precision),
conv4 (stride 2, batch norm), Omniglot-sized random inputs, inner lr 0.4, one inner step.
"""

from typing import Any

from absl import app
from absl import flags

from benchmarks import interleaved
from benchmarks import report as report_lib

SETTINGS = flags.DEFINE_list(
  "settings",
  ["5:1:1:32", "5:1:15:32"],
  "ways:shots:queries_per_class:meta_batch_size for each setting (one inner step).",
)
ORDERS = flags.DEFINE_list("orders", ["second", "first"], "Meta-gradient orders: second, first.")
REPEATS = flags.DEFINE_integer("repeats", 16, "Timed calls of each variant.", lower_bound=2)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
PRECISION = flags.DEFINE_enum(
  "precision",
  "float32",
  ["float32", "mixed_bfloat16"],
  "Keras's dtype policy of all three models (mixed_bfloat16: the agreement figures are "
  "then bfloat16's round-off).",
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def _maml(ways, task_mapping, first_order, shared_first_step=False):
  return interleaved.conv4_maml(
    ways,
    precision=PRECISION.value,
    task_mapping=task_mapping,
    first_order=first_order,
    shared_first_step=shared_first_step,
  )


def _compare(batch, ways, first_order) -> dict:
  """Both variants' agreement, trace, first call and time per call on one batch."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  learner = _maml(ways, "batched", first_order)
  shared = _maml(ways, "batched", first_order, shared_first_step=True)
  per_task = _maml(ways, "map_fn", first_order)
  functions = {
    "grouped": tf.function(lambda b: learner.compute_gradients(b)[0], autograph=False),
    "shared": tf.function(lambda b: shared.compute_gradients(b)[0], autograph=False),
  }
  result: dict[str, Any]
  result, values = interleaved.time_in_turns(functions, batch, REPEATS.value)
  # The library's per-task mapping on the same batch: how far two float32 computations
  # of this meta-gradient part anyway (round-off, amplified by lr 0.4 and ReLU kinks).
  values["map_fn"] = interleaved.meta_gradients_of(per_task, batch)
  relative = interleaved.meta_gradient_difference(learner.model)
  result["relative_error"] = relative(values["shared"], values["grouped"])
  result["relative_error_to_map_fn"] = relative(values["shared"], values["map_fn"])
  result["grouped_relative_error_to_map_fn"] = relative(values["grouped"], values["map_fn"])
  result["shared_over_grouped"] = (
    result["shared"]["seconds_per_call"] / result["grouped"]["seconds_per_call"]
  )
  return result


def main(argv):
  del argv
  rows = interleaved.rows_by_setting(SETTINGS.value, ORDERS.value, SEED.value, _compare)
  report = {
    "repeats": REPEATS.value,
    "inner_lr": interleaved.INNER_LR,
    "precision": PRECISION.value,
  }
  report_lib.emit({**report, "results": rows}, OUT.value)


if __name__ == "__main__":
  app.run(main)
