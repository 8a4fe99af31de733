r"""Why adaptation from a meta-trained initialisation diverges, when it does: the support
loss of each task over the inner SGD steps, and for the tasks whose loss ends above where
it started (or non-finite) the top Hessian eigenvalue of their support loss at each step,
beside the stability bound 2 / inner_lr of plain gradient descent.

  python -m experiments.adaptation_stability --workdir=workdirs/sinusoid/maml_k10 \
      --split=validation --num_tasks=100 --out=results/sinusoid/maml_k10_stability.json

Reads the run's flags (flags.json) and latest checkpoint like experiments.evaluate; the
steps and rate are the run's --num_eval_inner_steps and --inner_lr unless given here.
"""

import math
import time

from absl import flags
import numpy as np

from experiments import common
from experiments import run_flags
from experiments import run_folder
from mann import errors
from mann import files
from mann import meta
from mann.meta import curvature

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
SPLIT = flags.DEFINE_enum("split", "validation", ["train", "validation", "test"],
                          "Which tasks to adapt to.")
NUM_TASKS = flags.DEFINE_integer("num_tasks", 100, "Tasks to adapt to.", lower_bound=1)
EIGEN_STEPS = flags.DEFINE_integer(
    "eigen_steps", 4, "For a diverging task, the top Hessian eigenvalue at steps "
    "0..eigen_steps-1 of its trajectory.", lower_bound=1)
OUT = flags.DEFINE_string("out", None, "JSON report to write.")
flags.mark_flags_as_required(["workdir", "out"])

_TASKS_FOR_SCALE = 20  # the median curvature at the initialisation is over these


def main(argv):
  del argv
  learner, sampler, checkpoint_step, overrides = run_folder.load_trained_run(
      WORKDIR.value, split=SPLIT.value)
  if run_flags.ALGORITHM.value == "episodic" or run_flags.LEARN_INNER_LRS.value:
    raise errors.UserInputError(
        "adaptation_stability needs a run with a fixed-rate inner loop (maml, fomaml, "
        "reptile, transfer without --learn_inner_lrs)")
  model, objective = learner.model, learner.objective
  num_steps, inner_lr = run_flags.NUM_EVAL_INNER_STEPS.value, run_flags.INNER_LR.value
  weights = [v.value for v in model.trainable_variables]
  statistics = [v.value for v in model.non_trainable_variables]
  start = time.time()
  tasks, diverging, at_start = [], [], []
  for task in range(NUM_TASKS.value):
    episode = sampler.episode(task)

    def support_loss(ws, episode=episode):
      return objective.loss(episode.support_y,
                            meta.forward(model, ws, statistics, episode.support_x, training=True))

    trajectory = meta.sgd_adapt(model, weights, statistics, episode.support_x,
                                episode.support_y, objective=objective,
                                learning_rates=[[inner_lr] * len(weights)] * num_steps,
                                first_order=True)
    losses = [float(support_loss(ws)) for ws in trajectory]
    record = {"task": task, "support_loss_by_step": [float(l) for l in losses]}
    if task < _TASKS_FOR_SCALE:
      at_start.append(curvature.top_hessian_eigenvalue(support_loss, weights))
    if not (math.isfinite(losses[-1]) and losses[-1] <= losses[0]):
      eigenvalues = [curvature.top_hessian_eigenvalue(support_loss, trajectory[s])
                     for s in range(min(EIGEN_STEPS.value, len(trajectory)))]
      record["top_hessian_eigenvalue_by_step"] = [float(e) for e in eigenvalues]
      diverging.append(record)
      shown = " ".join(f"{l:.3g}" for l in losses)
      eigen = " ".join(f"{e:.0f}" for e in eigenvalues)
      print(f"task {task}: support loss by step {shown}; top Hessian eigenvalue "
            f"{eigen} (stable below 2/lr = {2 / inner_lr:.0f})")
    tasks.append(record)
  report = {"workdir": WORKDIR.value, "split": SPLIT.value, "num_tasks": NUM_TASKS.value,
            "checkpoint_step": checkpoint_step, "num_steps": num_steps, "inner_lr": inner_lr,
            "stability_bound": 2 / inner_lr, "overrides": overrides,
            "num_diverging": len(diverging),
            "diverging_tasks": [r["task"] for r in diverging],
            "median_top_eigenvalue_at_start": float(np.median(at_start)),
            "tasks": tasks, "seconds": round(time.time() - start, 1)}
  files.write_json(OUT.value, report)
  print(f"{len(diverging)} of {NUM_TASKS.value} {SPLIT.value} tasks end above their start "
        f"after {num_steps} steps at {inner_lr}; median top Hessian eigenvalue at the "
        f"initialisation (first {len(at_start)} tasks) {report['median_top_eigenvalue_at_start']:.0f}; "
        f"wrote {OUT.value}")


if __name__ == "__main__":
  common.run(main)
