r"""Meta-tests a trained run on held-out tasks; writes WORKDIR/eval.json.

  python -m experiments.evaluate --workdir=workdirs/maml_omniglot_5w1s

Reads the run's flags from WORKDIR/flags.json (any flag given here overrides its
saved value, e.g. --num_eval_inner_steps or --num_queries) and its latest checkpoint,
adapts to --num_tasks tasks of --split with --num_eval_inner_steps SGD steps each, and
reports the mean query score after each step with its 95% confidence interval
(1.96 std / sqrt(num_tasks)). Tasks are a function of --seed: every evaluation of a
seed sees the same tasks. With --kept_checkpoints it scores, instead, each checkpoint
that training kept (--keep_checkpoints_at) on those tasks, into
eval_kept_checkpoints.json: by_checkpoint, a list of eval.json's reports, each with
the train_seconds of its checkpoint.

eval.json: split, the report of mann.evaluation.report (protocol, num_tasks and the
scores below), checkpoint_step, overrides (the run flags given here with another value
than the run's, e.g. {"zero_reads": true}), eval_seconds, tasks_digest (a hash of the
tasks' classes and images, before any distortion or shuffle: equal digests, same
tasks; null for sinusoid tasks), and for few-shot tasks
num_eval_inner_steps, num_shots, num_queries,
  eval_transform (the --eval_transform distortion, or null), and
  classification: metric "accuracy", accuracy, ci95, accuracy_by_steps {steps: mean},
  ci95_by_steps; regression: metric "mse", mse, ci95, mse_by_steps, ci95_by_steps;
  online protocol: accuracy, accuracy_by_instance [1st, 2nd, ...], ci95_by_instance,
  num_instances; per_task: [num_tasks] each task's headline score in task order (after
  the last inner step; online: over the episode), for paired comparisons between runs;
and for a model with an external memory (unless --noreads_zeroed_control or --zero_reads)
reads_zeroed: the same report of the same tasks with every read zeroed, difference
(mean, ci95 and excludes_zero of the per-task score with reads minus without; online
also by instance), memory_used (the difference's interval excludes 0) and per_task.
"""

import os
import time

from absl import flags

from experiments import common
from experiments import data_flags
from experiments import run_flags
from experiments import run_folder
from mann import errors
from mann import evaluation
from mann import files
from mann import models
from mann import training
from mann.data import augment

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
NUM_TASKS = flags.DEFINE_integer("num_tasks", 600, "Tasks to evaluate.", lower_bound=1)
SPLIT = flags.DEFINE_enum(
  "split", "test", ["train", "validation", "test"], "Which classes (or task stream) to evaluate on."
)
TASKS_PER_BATCH = flags.DEFINE_integer(
  "tasks_per_batch", 25, "Tasks adapted together (memory vs speed; same scores).", lower_bound=1
)
OUTPUT_NAME = flags.DEFINE_string(
  "output_name", "eval.json", "File name of the report inside --workdir."
)
EVAL_TRANSFORM = flags.DEFINE_string(
  "eval_transform",
  None,
  "Out of distribution: every image of the tasks sheared then "
  "scaled about its centre, e.g. 'shear=0.5,scale=0.75' (x += shear * y; scale < 1 "
  "shrinks); the same tasks as without it. Unset: the images as they are.",
)
READS_ZEROED_CONTROL = flags.DEFINE_boolean(
  "reads_zeroed_control",
  True,
  "A model with an external memory (--model=mann) is scored a second time with its reads "
  "zeroed, on the same tasks: eval.json's reads_zeroed holds that score and the paired "
  "per-task difference (with reads minus without) with its 95% interval, and says "
  "memory_used: false where the interval contains 0. Off: one score.",
)
KEPT_CHECKPOINTS = flags.DEFINE_boolean(
  "kept_checkpoints",
  False,
  "Score every checkpoint that training kept (--keep_checkpoints_at), each on the same "
  "tasks, instead of the latest one: accuracy against budget. Writes "
  "eval_kept_checkpoints.json (unless --output_name says otherwise): by_checkpoint, one "
  "report as eval.json's per kept step, with its train_seconds.",
)
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  distortion = (
    augment.parse_distortion(EVAL_TRANSFORM.value)
    if EVAL_TRANSFORM.value
    else augment.Augmentation()
  )
  learner, sampler, checkpoint_step, overrides = run_folder.load_trained_run(
    WORKDIR.value, split=SPLIT.value, distortion=distortion
  )
  num_steps = (
    0
    if run_flags.ALGORITHM.value == "episodic"  # no inner steps
    else run_flags.NUM_EVAL_INNER_STEPS.value
  )
  start = time.time()
  # The tasks are the same for every checkpoint: one digest (each digest traces a draw).
  digest = evaluation.tasks_digest(sampler, NUM_TASKS.value)
  if not KEPT_CHECKPOINTS.value:
    report, line, control_line = _evaluate(learner, sampler, num_steps, digest)
    report.update(checkpoint_step=checkpoint_step, overrides=overrides)
    lines = [f"{SPLIT.value}: {line} (checkpoint step {checkpoint_step}){control_line}"]
  else:
    kept = training.kept_checkpoints(WORKDIR.value)
    if not kept:
      raise errors.UserInputError(
        f"{WORKDIR.value} has no {training.KEPT_FOLDER}: train it with "
        f"--keep_checkpoints_at=STEP,... or evaluate its latest checkpoint without "
        f"--kept_checkpoints"
      )
    by_checkpoint, lines = [], []
    for step, path in kept:
      training.restore_latest(WORKDIR.value, learner, checkpoint=path)
      one, line, control_line = _evaluate(learner, sampler, num_steps, digest)
      seconds = training.checkpoint_train_seconds(path)
      by_checkpoint.append({"checkpoint_step": step, "train_seconds": seconds, **one})
      lines.append(f"{SPLIT.value}, step {step} ({seconds / 3600:.2f} h): {line}{control_line}")
    report = {"split": SPLIT.value, "by_checkpoint": by_checkpoint, "overrides": overrides}
  report["eval_seconds"] = round(time.time() - start, 1)
  output_name = OUTPUT_NAME.value
  if KEPT_CHECKPOINTS.value and not flags.FLAGS["output_name"].present:
    output_name = "eval_kept_checkpoints.json"
  path = os.path.join(WORKDIR.value, output_name)
  files.write_json(path, report)
  print("\n".join(lines) + f"; wrote {path}")


def _evaluate(learner, sampler, num_steps, digest) -> tuple[dict, str, str]:
  """The report of the learner's present weights on the --num_tasks tasks (eval.json's
  entries but the checkpoint's, the overrides and the time; digest is the tasks'
  tasks_digest), its summary line and the reads-zeroed control's words ('' without one)."""
  scores = _score(learner, sampler, num_steps)
  metric_name = learner.objective.metric_name
  summary = evaluation.report(scores, metric_name=metric_name)
  report = {"split": SPLIT.value, **summary}
  if summary["protocol"] == evaluation.ONLINE:
    report["num_instances"] = data_flags.NUM_INSTANCES.value
  else:
    report.update(
      num_eval_inner_steps=num_steps,
      num_shots=data_flags.NUM_SHOTS.value,
      num_queries=data_flags.NUM_QUERIES.value,
      eval_transform=EVAL_TRANSFORM.value,
    )
  report["tasks_digest"] = digest
  control_line = ""
  cells = models.memory_cells(learner.model)
  # With --zero_reads the score above is itself the ablation.
  if READS_ZEROED_CONTROL.value and cells and not any(cell.zero_reads for cell in cells):
    report["reads_zeroed"], control_line = _reads_zeroed_control(
      learner, sampler, num_steps, scores
    )
  # Each task's headline score, in task order: runs scored on the same tasks (equal
  # tasks_digest) compare task by task (experiments.memory_report --baseline).
  report["per_task"] = _rounded(evaluation.per_task_scores(scores, metric_name))
  return report, evaluation.report_line(summary), control_line


def _score(learner, sampler, num_steps):
  """score_tasks of the --num_tasks tasks, --tasks_per_batch at a time."""
  return evaluation.score_tasks(
    learner,
    sampler,
    num_tasks=NUM_TASKS.value,
    num_inner_steps=num_steps,
    batch_size=TASKS_PER_BATCH.value,
  )


def _reads_zeroed_control(learner, sampler, num_steps, scores) -> tuple[dict, str]:
  """The same tasks scored with the model's reads zeroed: its report, the paired
  difference, memory_used; and the words for the summary line."""
  metric_name = learner.objective.metric_name
  with models.reads_zeroed(learner.model):
    control = _score(learner, sampler, num_steps)
  summary = evaluation.report(control, metric_name=metric_name)
  difference = evaluation.paired_difference(scores, control, metric_name=metric_name)
  used = difference["excludes_zero"]
  line = (
    f"; reads zeroed: {evaluation.report_line(summary)}, difference "
    f"{100 * difference['mean']:+.2f} +- {100 * difference['ci95']:.2f} points"
    f"{'' if used else ' (memory unused)'}"
  )
  per_task = _rounded(evaluation.per_task_scores(control, metric_name))
  return {**summary, "difference": difference, "memory_used": used, "per_task": per_task}, line


def _rounded(values) -> list[float]:
  """[num_tasks] scores as JSON numbers, to 6 decimals (a task's accuracy is k / n)."""
  return [round(float(value), 6) for value in values]


if __name__ == "__main__":
  common.run(main)
