r"""Why adaptation from a meta-trained initialisation diverges, when it does: the support
loss of each task over the inner SGD steps, and for the tasks whose loss ends above where
it started (or non-finite) the top Hessian eigenvalue of their support loss at each step,
beside the stability bound 2 / inner_lr of plain gradient descent.

  python -m experiments.adaptation_stability --workdir=workdirs/sinusoid/maml_k10 \
      --split=validation --num_tasks=100 --out=results/sinusoid/maml_k10_stability.json

Reads the run's flags (flags.json) and latest checkpoint like experiments.evaluate; the
steps and rate are the run's --num_eval_inner_steps and --inner_lr unless given here.
The measurement is mann.analysis.stability.adaptation_stability's.
"""

import time

from absl import flags

from experiments import common
from experiments import run_flags
from experiments import run_folder
from mann import files
from mann.analysis import stability

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
SPLIT = flags.DEFINE_enum(
  "split", "validation", ["train", "validation", "test"], "Which tasks to adapt to."
)
NUM_TASKS = flags.DEFINE_integer("num_tasks", 100, "Tasks to adapt to.", lower_bound=1)
EIGEN_STEPS = flags.DEFINE_integer(
  "eigen_steps",
  4,
  "For a diverging task, the top Hessian eigenvalue at steps 0..eigen_steps-1 of its trajectory.",
  lower_bound=1,
)
OUT = flags.DEFINE_string("out", None, "JSON report to write.")
flags.mark_flags_as_required(["workdir", "out"])


def _show(record: dict, bound: float) -> None:
  shown = " ".join(f"{loss:.3g}" for loss in record["support_loss_by_step"])
  eigen = " ".join(f"{e:.0f}" for e in record["top_hessian_eigenvalue_by_step"])
  print(
    f"task {record['task']}: support loss by step {shown}; top Hessian eigenvalue "
    f"{eigen} (stable below 2/lr = {bound:.0f})"
  )


def main(argv):
  del argv
  learner, sampler, checkpoint_step, overrides = run_folder.load_trained_run(
    WORKDIR.value, split=SPLIT.value
  )
  start = time.time()
  measure = common.library_checks("adaptation_stability")(stability.adaptation_stability)
  report = measure(
    learner,
    sampler,
    num_tasks=NUM_TASKS.value,
    num_steps=run_flags.NUM_EVAL_INNER_STEPS.value,
    eigen_steps=EIGEN_STEPS.value,
    on_diverging=lambda record: _show(record, 2 / learner.inner_lr),
  )
  report = {
    "workdir": WORKDIR.value,
    "split": SPLIT.value,
    "checkpoint_step": checkpoint_step,
    "overrides": overrides,
    **report,
    "seconds": round(time.time() - start, 1),
  }
  files.write_json(OUT.value, report)
  print(
    f"{report['num_diverging']} of {NUM_TASKS.value} {SPLIT.value} tasks end above their "
    f"start after {report['num_steps']} steps at {report['inner_lr']}; median top Hessian "
    f"eigenvalue at the initialisation (first {min(NUM_TASKS.value, 20)} tasks) "
    f"{report['median_top_eigenvalue_at_start']:.0f}; wrote {OUT.value}"
  )


if __name__ == "__main__":
  common.run(main)
