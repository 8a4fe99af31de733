r"""Meta-tests a trained run on held-out tasks; writes WORKDIR/eval.json.

  python -m experiments.evaluate --workdir=workdirs/maml_omniglot_5w1s

Reads the run's flags from WORKDIR/flags.json (any flag given here overrides its
saved value, e.g. --num_eval_inner_steps or --num_queries) and its latest checkpoint,
adapts to --num_tasks tasks of --split with --num_eval_inner_steps SGD steps each, and
reports the mean query score after each step with its 95% confidence interval
(1.96 std / sqrt(num_tasks)). Tasks are a function of --seed: every evaluation of a
seed sees the same tasks.

eval.json: split, num_tasks, num_eval_inner_steps, checkpoint_step, overrides (the run
flags given here with another value than the run's, e.g. {"zero_reads": true}), and
  eval_transform (the --eval_transform distortion, or null), tasks_digest (a hash of
  the tasks' classes and images, before any distortion: equal digests, same tasks), and
  classification: accuracy, ci95, accuracy_by_steps {steps: mean}, ci95_by_steps;
  regression: mse, ci95, mse_by_steps {steps: mean}, ci95_by_steps;
  online protocol: accuracy, accuracy_by_instance [1st, 2nd, ...], ci95_by_instance.
"""

import os
import time

from absl import flags
import numpy as np

from experiments import common
from experiments import data_flags
from experiments import run_flags
from mann import evaluation
from mann import files
from mann.data import augment

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
NUM_TASKS = flags.DEFINE_integer("num_tasks", 600, "Tasks to evaluate.", lower_bound=1)
SPLIT = flags.DEFINE_enum("split", "test", ["train", "validation", "test"],
                          "Which classes (or task stream) to evaluate on.")
TASKS_PER_BATCH = flags.DEFINE_integer(
    "tasks_per_batch", 25, "Tasks adapted together (memory vs speed; same scores).",
    lower_bound=1)
OUTPUT_NAME = flags.DEFINE_string("output_name", "eval.json",
                                  "File name of the report inside --workdir.")
EVAL_TRANSFORM = flags.DEFINE_string(
    "eval_transform", None, "Out of distribution: every image of the tasks sheared then "
    "scaled about its centre, e.g. 'shear=0.5,scale=0.75' (x += shear * y; scale < 1 "
    "shrinks); the same tasks as without it. Unset: the images as they are.")
flags.mark_flag_as_required("workdir")


def _write(report: dict) -> str:
  path = os.path.join(WORKDIR.value, OUTPUT_NAME.value)
  files.write_json(path, report)
  return path


def main(argv):
  del argv
  distortion = (augment.parse_distortion(EVAL_TRANSFORM.value) if EVAL_TRANSFORM.value
                else augment.Augmentation())
  learner, sampler, checkpoint_step, overrides = run_flags.load_trained_run(
      WORKDIR.value, split=SPLIT.value, distortion=distortion)
  num_steps = (0 if run_flags.ALGORITHM.value == "episodic"  # no inner steps
               else run_flags.NUM_EVAL_INNER_STEPS.value)
  start = time.time()
  scores = evaluation.score_tasks(learner, sampler, num_tasks=NUM_TASKS.value,
                                  num_inner_steps=num_steps,
                                  batch_size=TASKS_PER_BATCH.value)
  if "accuracy_by_instance" in scores:  # online protocol (Santoro et al.)
    summary = evaluation.summarise_by_instance(scores)
    report = {"split": SPLIT.value, "protocol": "online", "num_tasks": summary["num_tasks"],
              "checkpoint_step": checkpoint_step,
              "accuracy": float(np.mean(scores["accuracy_by_instance"])),
              "accuracy_by_instance": summary["accuracy_by_instance"],
              "ci95_by_instance": summary["ci95_by_instance"],
              "num_instances": data_flags.NUM_INSTANCES.value,
              "overrides": overrides,
              "eval_seconds": round(time.time() - start, 1)}
    _write(report)
    shown = " / ".join(f"{100 * a:.1f}" for a in summary["accuracy_by_instance"])
    print(f"{SPLIT.value}: accuracy by instance {shown} % over {summary['num_tasks']} "
          f"episodes (checkpoint step {checkpoint_step})")
    return
  metric = learner.objective.metric_name
  summary = evaluation.summarise(scores, metric)
  report = {
      "split": SPLIT.value,
      "num_tasks": summary["num_tasks"],
      "num_eval_inner_steps": num_steps,
      "checkpoint_step": checkpoint_step,
      metric: summary[metric],
      "ci95": summary["ci95"],
      f"{metric}_by_steps": {k: v["mean"] for k, v in summary[f"{metric}_by_steps"].items()},
      "ci95_by_steps": {k: v["ci95"] for k, v in summary[f"{metric}_by_steps"].items()},
      "num_shots": data_flags.NUM_SHOTS.value,
      "num_queries": data_flags.NUM_QUERIES.value,
      "overrides": overrides,
      "eval_transform": EVAL_TRANSFORM.value,
      "tasks_digest": evaluation.tasks_digest(sampler, NUM_TASKS.value),
      "eval_seconds": round(time.time() - start, 1),
  }
  path = _write(report)
  scale = 100.0 if metric == "accuracy" else 1.0
  print(f"{SPLIT.value}: {metric} {scale * report[metric]:.2f} +- {scale * report['ci95']:.2f} "
        f"over {report['num_tasks']} tasks after {num_steps} steps "
        f"(checkpoint step {checkpoint_step}); wrote {path}")


if __name__ == "__main__":
  common.run(main)
