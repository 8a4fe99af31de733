r"""Inner steps traced once as a tf.while_loop, or unrolled: trace, first call and step time.

  python -m benchmarks.inner_step_tracing --out=results/inner_step_tracing.json

For each setting (conv4 MAML, Omniglot-sized random inputs), in one process: the
meta-gradient (second or first order) and the meta-test evaluation (the query scores
after every step), each traced twice, with inner_step_tracing "loop" and "unrolled"
(mann.meta.gradient_learner). Reported per variant: seconds to trace, seconds of its
first call after the trace (graph optimisation and the first run), and the median of
--repeats calls, the two variants' calls interleaved (ABAB..., then BABA...) so that
the shared machine's drift falls on both alike; loop_over_unrolled is the ratio of
medians. This is the measurement behind the default, "auto".
"""

from typing import Any

from absl import app
from absl import flags

from benchmarks import inputs
from benchmarks import interleaved
from benchmarks import report as report_lib

SETTINGS = flags.DEFINE_list(
  "settings",
  ["20:1:1:16:5", "5:1:1:32:5", "5:1:15:32:5"],
  "ways:shots:queries_per_class:meta_batch_size:inner_steps for each setting.",
)
ORDERS = flags.DEFINE_list("orders", ["second", "first"], "Meta-gradient orders: second, first.")
EVAL_STEPS = flags.DEFINE_integer(
  "eval_steps", 20, "Inner steps of the timed meta-test evaluation.", lower_bound=1
)
REPEATS = flags.DEFINE_integer("repeats", 12, "Timed calls of each variant.", lower_bound=2)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")

TRACINGS = ("loop", "unrolled")


def _compare(make_function, batch, repeats) -> dict:
  """Traces, first-calls and times make_function(tracing)(batch) for both tracings."""
  functions = {tracing: make_function(tracing) for tracing in TRACINGS}
  result: dict[str, Any] = interleaved.time_in_turns(functions, batch, repeats)[0]
  result["loop_over_unrolled"] = (
    result["loop"]["seconds_per_call"] / result["unrolled"]["seconds_per_call"]
  )
  return result


def _setting(ways, shots, queries, tasks, inner_steps) -> list[dict]:
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import models  # pylint: disable=g-import-not-at-top

  batch = inputs.random_meta_batch(ways, shots, queries, tasks)
  setting = dict(
    ways=ways,
    shots=shots,
    queries_per_class=queries,
    meta_batch_size=tasks,
    inner_steps=inner_steps,
  )
  rows = []

  def learner(tracing, first_order):
    keras.utils.set_random_seed(0)
    return meta.MAML(
      models.conv4(num_classes=ways),
      objective=meta.CLASSIFICATION,
      num_inner_steps=inner_steps,
      inner_lr=0.1,
      first_order=first_order,
      task_mapping="batched",
      inner_step_tracing=tracing,
    )

  for order in ORDERS.value:
    gradients = lambda tracing, first_order=order == "first": tf.function(
      learner(tracing, first_order).compute_gradients, autograph=False
    )
    rows.append(
      {
        **setting,
        "call": f"meta_gradient_{order}_order",
        **_compare(gradients, batch, REPEATS.value),
      }
    )
    print(rows[-1], flush=True)

  def evaluation(tracing):
    evaluating = learner(tracing, True)
    return tf.function(lambda b: evaluating.evaluate_tasks(b, EVAL_STEPS.value), autograph=False)

  rows.append(
    {
      **setting,
      "inner_steps": EVAL_STEPS.value,
      "call": "evaluate_tasks",
      **_compare(evaluation, batch, REPEATS.value),
    }
  )
  print(rows[-1], flush=True)
  return rows


def main(argv):
  del argv
  rows = []
  for setting in SETTINGS.value:
    rows += _setting(*[int(field) for field in setting.split(":")])
  report_lib.emit(
    {"repeats": REPEATS.value, "eval_steps": EVAL_STEPS.value, "results": rows}, OUT.value
  )


if __name__ == "__main__":
  app.run(main)
