r"""The memory x initialisation grid: what an external memory adds, what a meta-learned
initialisation adds, on the same encoder, tasks, seeds and budget.

  python -m experiments.ablate --omniglot_dir=../shared/data/omniglot \
      --budget_steps=2000 --workdir=workdirs/ablation_5w1s
  python -m experiments.ablate --omniglot_dir=../shared/data/omniglot --num_shots=5 \
      --budget_steps=2000 --workdir=workdirs/ablation_5w5s

Cells (--cells), every one with the conv4 encoder at 28x28, the flagfiles' settings,
--budget_steps meta-steps and the same --seeds (so the same training and test tasks):

  lstm_episodic   LSTM, no external memory; weights fixed at test, its state adapts
  lstm_maml       the LSTM, MAML-initialised (S inner steps on the support sequence)
  mann_episodic   the MANN (LSTM controller + LRUA memory), weights fixed at test
  mann_maml       the MANN, MAML-initialised
  mann_fine_tune  mann_episodic's weights fine-tuned at test by the same S steps, never
                  meta-trained for it (any gradient steps, or the learned initialisation?);
                  batch norm with its running statistics, as the episodic MANN is tested
  conv4_maml      reference: conv4 MAML (the paper's model)
  conv4_transfer  reference: conv4 pretrained on the training classes, fine-tuned at test

Every memory cell (mann_*) is scored with its reads zeroed too, on the same tasks
(experiments.evaluate's control): ablation.md gives that accuracy and the paired
difference with its interval, and names the cell "memory unused" where the interval
holds 0.

Each cell is an ordinary experiments.train + experiments.evaluate run in
WORKDIR/seed_<s>/<cell>/ (mann_fine_tune evaluates mann_episodic's run and writes
eval_fine_tune.json there). Rerunning the same command resumes unfinished cells and
never retrains finished ones. --eval_transform also scores every cell on the same test
tasks with every image sheared and scaled (Finn & Levine 2018's out-of-distribution
probe).

Accuracy against budget: every cell keeps its weights at --keep_checkpoints_at (up to
the budget), and each kept checkpoint is scored on the same test tasks; ablation.md
tabulates those curves against meta-steps and training hours and ablation_curves.png
draws them. The questions (ablation_report.COMPARISONS) are answered task by task: the
paired difference of two cells on the shared test tasks, pooled over the seeds, with
its 95% interval and an equivalence test (TOST, ±1 point). Writes WORKDIR/ablation.json,
ablation.md, ablation.png and ablation_curves.png.
"""

import dataclasses
import os
import sys
import time
from typing import Optional

from absl import flags

from experiments import ablation_report
from experiments import common
from experiments import data_flags
from mann import errors
from mann import files
from mann import training
from mann.data import augment

CONFIGS = os.path.join("experiments", "configs")  # flagfiles name others from the repo root
_PATH_FLAGS = ("omniglot_dir", "data_dir")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One cell: how it trains (a flagfile plus flags), or whose run it re-evaluates."""

  memory: str
  adaptation: str
  flagfile: Optional[str] = None
  train_flags: tuple = ()
  trained_by: Optional[str] = None  # re-evaluates that cell's run, with eval_flags
  eval_flags: tuple = ()


CELLS = {
  "lstm_episodic": Cell(
    "lstm (none)", "episodic", "maml_lstm_omniglot_5w1s.flags", ("--algorithm=episodic",)
  ),
  "lstm_maml": Cell("lstm (none)", "maml", "maml_lstm_omniglot_5w1s.flags"),
  "mann_episodic": Cell("mann (LRUA)", "episodic", "mann_episodic_omniglot_5w1s.flags"),
  "mann_maml": Cell("mann (LRUA)", "maml", "maml_mann_omniglot_5w1s.flags"),
  "mann_fine_tune": Cell(
    "mann (LRUA)",
    "fine_tune",
    trained_by="mann_episodic",
    eval_flags=("--algorithm=maml", "--batch_norm=running"),
  ),
  "conv4_maml": Cell("conv4 (reference)", "maml", "maml_omniglot_5w1s.flags"),
  "conv4_transfer": Cell(
    "conv4 (reference)", "transfer", "maml_omniglot_5w1s.flags", ("--algorithm=transfer",)
  ),
}

CELL_NAMES = flags.DEFINE_list(
  "cells", list(CELLS), f"Cells to run: {', '.join(CELLS)} (mann_fine_tune needs mann_episodic)."
)
SEEDS = flags.DEFINE_list(
  "seeds",
  ["0"],
  "Seeds: each cell is trained and tested once per "
  "seed (weights and tasks), the same seeds for every cell.",
)
BUDGET_STEPS = flags.DEFINE_integer(
  "budget_steps", 2000, "Meta-steps of every cell.", lower_bound=1
)
NUM_TASKS = flags.DEFINE_integer("num_tasks", 600, "Test tasks per cell and seed.", lower_bound=1)
EVAL_TRANSFORM = flags.DEFINE_string(
  "eval_transform",
  None,
  "Also score every cell on the same test tasks with each image "
  "sheared then scaled about its centre, e.g. 'shear=0.5,scale=0.75' (x += shear * y; "
  "scale < 1 shrinks the character). Unset: in distribution only.",
)
TRAIN_FLAGS = flags.DEFINE_list(
  "train_flags",
  [],
  "Extra flags for every cell's experiments.train, e.g. "
  "--train_flags=--validate_every=500 (tiny models in tests).",
)
KEEP_CHECKPOINTS_AT = flags.DEFINE_list(
  "keep_checkpoints_at",
  ["500", "1000", "2000", "5000", "10000", "20000"],
  "Meta-steps at which every cell keeps its weights (experiments.train "
  "--keep_checkpoints_at; those past --budget_steps are dropped, the budget is added); "
  "each kept checkpoint is scored on the same test tasks: accuracy against budget.",
)
WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the grid (created if missing).")
flags.mark_flag_as_required("workdir")


def _data_flags() -> list[str]:
  """The data flags given on this command line, passed on to every cell (paths made
  absolute: the cells run from the repository root)."""
  given = []
  for flag in flags.FLAGS.get_flags_for_module(data_flags):
    if not flag.present:
      continue
    if flag.name in _PATH_FLAGS and flag.value:
      given.append(f"--{flag.name}={os.path.abspath(flag.value)}")
    else:
      given.append(flag.serialize())
  return given


def _kept_steps() -> list[int]:
  """--keep_checkpoints_at up to the budget, and the budget."""
  steps = common.kept_steps(KEEP_CHECKPOINTS_AT.value)
  return sorted({step for step in steps if step < BUDGET_STEPS.value} | {BUDGET_STEPS.value})


def _train(name: str, cell: Cell, workdir: str, seed: str) -> None:
  results = common.read_json(os.path.join(workdir, "results.json"))
  if results is not None and results["num_steps"] == BUDGET_STEPS.value:
    print(f"ablate: seed {seed} {name}: trained ({BUDGET_STEPS.value} steps), kept", flush=True)
    return
  assert cell.flagfile is not None, f"{name} trains, so it names a flagfile"
  common.run_binary(
    [
      "experiments.train",
      f"--flagfile={os.path.join(CONFIGS, cell.flagfile)}",
      *cell.train_flags,
      *_data_flags(),
      f"--num_steps={BUDGET_STEPS.value}",
      f"--seed={seed}",
      f"--keep_checkpoints_at={','.join(map(str, _kept_steps()))}",
      f"--workdir={workdir}",
      *TRAIN_FLAGS.value,
    ],
    f"seed {seed} {name}: training",
    driver="ablate",
  )


def _evaluate(
  name: str, cell: Cell, workdir: str, seed: str, output_name: str, transform: Optional[str]
) -> dict:
  """The cell's eval report, evaluating its run's last checkpoint when not done yet."""
  path = os.path.join(workdir, output_name)
  report = common.read_json(path)
  if (
    report is None
    or report["checkpoint_step"] != BUDGET_STEPS.value
    or report["num_tasks"] != NUM_TASKS.value
    # A memory cell's report from before the reads-zeroed control, or any from before
    # per-task scores (the paired comparisons need them): scored again.
    or (cell.memory.startswith("mann") and "reads_zeroed" not in report)
    or "per_task" not in report
  ):
    common.run_binary(
      [
        "experiments.evaluate",
        f"--workdir={workdir}",
        f"--num_tasks={NUM_TASKS.value}",
        f"--output_name={output_name}",
        *cell.eval_flags,
        *([f"--eval_transform={transform}"] if transform else []),
      ],
      f"seed {seed} {name}: evaluating" + (f" ({transform})" if transform else ""),
      driver="ablate",
    )
    report = common.require_json(path, written_by="experiments.evaluate")
  return report


def _curve(name: str, cell: Cell, workdir: str, seed: str, transform: Optional[str]) -> list[dict]:
  """The cell's kept checkpoints scored on the test tasks (eval_kept_checkpoints*.json,
  scored when missing or stale): [{step, train_hours, accuracy, ci95, num_tasks}]; []
  for a run trained before it kept checkpoints."""
  kept = [step for step, _ in training.kept_checkpoints(workdir)]
  if not kept:
    return []
  output = "eval_kept_checkpoints" if cell.trained_by is None else f"eval_kept_{cell.adaptation}"
  if transform:
    output += "_" + ablation_report.transform_suffix(transform)
  path = os.path.join(workdir, f"{output}.json")
  report = common.read_json(path)
  if (
    report is None
    or [r["checkpoint_step"] for r in report["by_checkpoint"]] != kept
    or report["by_checkpoint"][0]["num_tasks"] != NUM_TASKS.value
  ):
    common.run_binary(
      [
        "experiments.evaluate",
        f"--workdir={workdir}",
        f"--num_tasks={NUM_TASKS.value}",
        "--kept_checkpoints",
        "--noreads_zeroed_control",
        f"--output_name={output}.json",
        *cell.eval_flags,
        *([f"--eval_transform={transform}"] if transform else []),
      ],
      f"seed {seed} {name}: evaluating its kept checkpoints"
      + (f" ({transform})" if transform else ""),
      driver="ablate",
    )
    report = common.require_json(path, written_by="experiments.evaluate")
  return [
    {
      "step": r["checkpoint_step"],
      "train_hours": r["train_seconds"] / 3600,
      "accuracy": r["accuracy"],
      "ci95": r["ci95"],
      "num_tasks": r["num_tasks"],
    }
    for r in report["by_checkpoint"]
  ]


def _comparisons(per_task: dict, transform: Optional[str]) -> list[dict]:
  """ablation_report.COMPARISONS between the cells that ran, paired task by task.

  per_task: {(cell, seed, "in_distribution" or "transformed"): (tasks_digest, scores)}.
  """
  seeds = sorted({seed for _, seed, _ in per_task})
  keys = ["in_distribution"] + (["transformed"] if transform else [])
  comparisons = []
  for first, second, question in ablation_report.COMPARISONS:
    entry: dict = {"first": first, "second": second, "question": question}
    for key in keys:
      firsts = [per_task.get((first, s, key)) for s in seeds]
      seconds = [per_task.get((second, s, key)) for s in seeds]
      if any(a is None or b is None or a[0] != b[0] for a, b in zip(firsts, seconds)):
        break  # a cell that did not run, or tasks that differ: no paired comparison
      entry[key] = ablation_report.paired_comparison(
        [a[1] for a in firsts if a], [b[1] for b in seconds if b]
      )
    else:
      comparisons.append(entry)
  return comparisons


def _reads_zeroed_entry(report: dict) -> dict:
  """A memory cell's reads-zeroed score and paired difference (eval.json's reads_zeroed),
  as the pooling reads them."""
  control = report["reads_zeroed"]
  return {
    "accuracy": control["accuracy"],
    "ci95": control["ci95"],
    "difference": control["difference"]["mean"],
    "difference_ci95": control["difference"]["ci95"],
    "memory_used": control["memory_used"],
    "num_tasks": control["num_tasks"],
  }


def main(argv):
  del argv
  unknown = [n for n in CELL_NAMES.value if n not in CELLS]
  if unknown:
    raise errors.UserInputError(
      f"--cells: unknown {', '.join(unknown)}; choose from {', '.join(CELLS)}"
    )
  names = [n for n in CELLS if n in CELL_NAMES.value]  # the table's order
  for name in names:
    trained_by = CELLS[name].trained_by
    if trained_by and trained_by not in names:
      raise errors.UserInputError(
        f"--cells: {name} re-evaluates {trained_by}'s run; add {trained_by}"
      )
  try:
    seeds = [str(int(s)) for s in SEEDS.value]
  except ValueError:
    raise errors.UserInputError(f"--seeds={','.join(SEEDS.value)} must be integers") from None
  if not seeds:
    raise errors.UserInputError("--seeds needs at least one seed")
  transform = EVAL_TRANSFORM.value
  if transform:
    augment.parse_distortion(transform)  # a bad spec fails before any training
  grid_dir = os.path.abspath(WORKDIR.value)
  os.makedirs(grid_dir, exist_ok=True)
  start = time.time()
  rows = {}
  per_task = {}
  for seed in seeds:
    for name in names:
      cell = CELLS[name]
      workdir = os.path.join(grid_dir, f"seed_{seed}", cell.trained_by or name)
      if cell.trained_by is None:
        _train(name, cell, workdir, seed)
      output = "eval" if cell.trained_by is None else f"eval_{cell.adaptation}"
      report = _evaluate(name, cell, workdir, seed, f"{output}.json", None)
      results = common.read_json(os.path.join(workdir, "results.json"))
      row = rows.setdefault(
        name,
        {
          "memory": cell.memory,
          "adaptation": cell.adaptation,
          "trained_by": cell.trained_by,
          "per_seed": {},
          "per_seed_transformed": {},
        },
      )
      per_task[(name, seed, "in_distribution")] = (report["tasks_digest"], report["per_task"])
      row["per_seed"][seed] = {
        k: report[k]
        for k in (
          "accuracy",
          "ci95",
          "accuracy_by_steps",
          "ci95_by_steps",
          "num_tasks",
          "num_eval_inner_steps",
          "checkpoint_step",
        )
      }
      row["per_seed"][seed]["train_hours"] = results["train_seconds"] / 3600
      row["per_seed"][seed]["curve"] = _curve(name, cell, workdir, seed, None)
      if "reads_zeroed" in report:
        row["per_seed"][seed]["reads_zeroed"] = _reads_zeroed_entry(report)
      row.update(
        num_steps=results["num_steps"],
        # Summed over the seeds (each seed's is in per_seed).
        train_hours=sum(s["train_hours"] for s in row["per_seed"].values()),
        num_parameters=results["num_parameters"],
        num_eval_inner_steps=report["num_eval_inner_steps"],
      )
      if transform:
        shifted = _evaluate(
          name,
          cell,
          workdir,
          seed,
          f"{output}_{ablation_report.transform_suffix(transform)}.json",
          transform,
        )
        row["per_seed_transformed"][seed] = {
          k: shifted[k] for k in ("accuracy", "ci95", "num_tasks", "eval_transform")
        }
        row["per_seed_transformed"][seed]["curve"] = _curve(name, cell, workdir, seed, transform)
        per_task[(name, seed, "transformed")] = (shifted["tasks_digest"], shifted["per_task"])
  for row in rows.values():
    row["pooled"] = ablation_report.pooled(list(row["per_seed"].values()))
    zeroed = [r["reads_zeroed"] for r in row["per_seed"].values() if "reads_zeroed" in r]
    if zeroed:
      row["pooled_reads_zeroed"] = ablation_report.pooled_reads_zeroed(zeroed)
    curves = [r["curve"] for r in row["per_seed"].values()]
    row["curve"] = ablation_report.pooled_curve(curves) if all(curves) else []
    if transform:
      row["pooled_transformed"] = ablation_report.pooled(list(row["per_seed_transformed"].values()))
      curves = [r["curve"] for r in row["per_seed_transformed"].values()]
      row["curve_transformed"] = ablation_report.pooled_curve(curves) if all(curves) else []
  shots = data_flags.NUM_SHOTS.value
  grid = {
    "command": " ".join(["python -m experiments.ablate", *sys.argv[1:]]),
    "data": f"{data_flags.DATASET.value} {data_flags.NUM_WAYS.value}-way {shots}-shot",
    "num_ways": data_flags.NUM_WAYS.value,
    "num_shots": shots,
    "budget_steps": BUDGET_STEPS.value,
    "seeds": seeds,
    "num_tasks": NUM_TASKS.value,
    "eval_transform": transform,
    "cells": rows,
    "comparisons": _comparisons(per_task, transform),
  }
  files.write_json(os.path.join(grid_dir, "ablation.json"), grid)
  ablation_report.write_table(grid, os.path.join(grid_dir, "ablation.md"))
  ablation_report.plot(grid, os.path.join(grid_dir, "ablation.png"))
  curves = ablation_report.plot_curves(grid, os.path.join(grid_dir, "ablation_curves.png"))
  print(
    f"ablate: {len(names)} cells x {len(seeds)} seeds in {time.time() - start:.0f} s; "
    f"wrote {os.path.join(grid_dir, 'ablation.md')} (.json, .png"
    + (", ablation_curves.png)" if curves else ")")
  )


if __name__ == "__main__":
  common.run(main)
