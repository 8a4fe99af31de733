r"""The memory x initialisation grid: what an external memory adds, what a meta-learned
initialisation adds, on the same tasks and seeds, each cell trained by its own recipe.

  python -m experiments.ablate --omniglot_dir=../shared/data/omniglot --seeds=0,1 \
      --workdir=workdirs/ablation_5w1s
  python -m experiments.ablate --omniglot_dir=../shared/data/omniglot --num_shots=5 \
      --seeds=0,1 --workdir=workdirs/ablation_5w5s

Cells (--cells), every one at --image_size (20x20 by default: the memory-only cells read
Santoro's 20x20 pixels, and cells pair task by task only on the same images), with the
same --seeds (so the same test tasks). ablation.md lists each cell's recipe and why.

  lstm_episodic   LSTM, no external memory, trained on Santoro's online sequences for
                  --memory_only_budget_steps; weights fixed at test, its state adapts
  lstm_maml       conv4 + LSTM, MAML-initialised (S inner steps on the support sequence),
                  --budget_steps
  mann_episodic   the MANN (LSTM controller + LRUA memory, key strength), as lstm_episodic
  mann_maml       conv4 + MANN, MAML-initialised
  mann_fine_tune  mann_episodic's weights fine-tuned at test by SGD, never meta-trained for
                  it (any gradient steps, or the learned initialisation?)
  conv4_maml      reference: conv4 MAML (the paper's model)
  conv4_transfer  reference: conv4 pretrained on the training classes, fine-tuned at test

The two cells that fine-tune without meta-training for it (mann_fine_tune,
conv4_transfer) choose their test-time rate (--tune_inner_lrs) and steps (1 to
--tune_max_inner_steps) on --num_tune_tasks validation tasks (tuning_<adaptation>.json);
the test tasks see only the choice.

Out of distribution, a sweep (Finn & Levine 2018's claim that gradient-based learners
generalise beyond their training distribution better than recurrent ones): every cell
and seed is scored at its last checkpoint on the same test tasks under each
--ood_sweep distortion, and on tasks with each of --ood_test_shots shots
(ablation.md's out-of-distribution table, ablation_ood.png). More ways at test than in
training would need wider output heads than the cells have, so the sweep has none.

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
  recipe: str  # how it is trained and tested, and why that recipe (ablation.md's cell list)
  flagfile: Optional[str] = None
  train_flags: tuple = ()
  trained_by: Optional[str] = None  # re-evaluates that cell's run, with eval_flags
  eval_flags: tuple = ()
  memory_only: bool = False  # trained for --memory_only_budget_steps, not --budget_steps
  tuned: bool = False  # its test-time steps and rate are chosen on the validation classes


# An online-trained model is tested on the grid's few-shot tasks: each query after the
# support sequence, weights fixed (as Santoro et al.'s sequences, with 1 query per class).
_FEW_SHOT_TEST = ("--protocol=few_shot", "--num_queries=1")
_SANTORO = (
  "Santoro et al.'s recipe: online sequences of 5 classes x 10 instances (one-hot labels, "
  "20x20 pixels, controller 200, Adam 1e-3) for --memory_only_budget_steps, tested on the "
  "grid's few-shot tasks with its weights fixed. Why: trained on few-shot episodes it "
  "stayed at the label-elimination plateau (chance) after 2,000 steps; on online "
  "sequences it leaves it at about 4-6k steps"
)
_MAML = (
  "the conv4 MAML recipe (1 inner step at 0.4 in training, 3 at test, meta-batch 32, "
  "Adam 1e-3, 1 query per class) for --budget_steps, the support set fed as a sequence. "
  "Why: the recipe that trains conv4 MAML to 98% trains the sequence models too"
)
CELLS = {
  "lstm_episodic": Cell(
    "lstm (none)",
    "episodic",
    "the LSTM alone, " + _SANTORO,
    "lstm_omniglot_online_5way.flags",
    eval_flags=_FEW_SHOT_TEST,
    memory_only=True,
  ),
  "lstm_maml": Cell(
    "lstm (none)", "maml", "MAML over conv4 + LSTM, " + _MAML, "maml_lstm_omniglot_5w1s.flags"
  ),
  "mann_episodic": Cell(
    "mann (LRUA)",
    "episodic",
    "the MANN with a learned read sharpness (--key_strength), " + _SANTORO,
    "mann_key_strength_omniglot_online_5way.flags",
    eval_flags=_FEW_SHOT_TEST,
    memory_only=True,
  ),
  "mann_maml": Cell(
    "mann (LRUA)",
    "maml",
    "MAML over conv4 + MANN (key strength), " + _MAML,
    "maml_mann_omniglot_5w1s.flags",
  ),
  "mann_fine_tune": Cell(
    "mann (LRUA)",
    "fine_tune",
    "mann_episodic's weights (a memory that learned) fine-tuned at test by SGD on the "
    "support set (every weight, the support sequence replayed), never meta-trained for "
    "it; steps and rate chosen on the validation classes. Its pixel encoder has no batch "
    "norm, so no batch-norm mode differs from the cells it is compared with",
    trained_by="mann_episodic",
    eval_flags=(
      *_FEW_SHOT_TEST,
      "--algorithm=maml",
      "--inner_loss=support_replay",
      "--inner_weights=all",
    ),
    tuned=True,
  ),
  "conv4_maml": Cell(
    "conv4 (reference)",
    "maml",
    "Finn et al.'s conv4 MAML (maml_omniglot_5w1s.flags) for --budget_steps",
    "maml_omniglot_5w1s.flags",
  ),
  "conv4_transfer": Cell(
    "conv4 (reference)",
    "transfer",
    "conv4 pretrained on the training classes (one softmax over all of them) for "
    "--budget_steps, then fine-tuned at test; its steps and rate chosen on the validation "
    "classes (Chen et al. 2019, A Closer Look at Few-shot Classification)",
    "maml_omniglot_5w1s.flags",
    ("--algorithm=transfer",),
    tuned=True,
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
  "budget_steps", 10000, "Meta-steps of every MAML and transfer cell.", lower_bound=1
)
MEMORY_ONLY_BUDGET_STEPS = flags.DEFINE_integer(
  "memory_only_budget_steps",
  45000,
  "Meta-steps of the memory-only cells (lstm_episodic, mann_episodic: Santoro et al.'s "
  "online sequences, which leave the label-elimination plateau at about 4-6k steps).",
  lower_bound=1,
)
TUNE_INNER_LRS = flags.DEFINE_list(
  "tune_inner_lrs",
  ["0.01", "0.03", "0.1", "0.4"],
  "Test-time SGD rates tried, on the validation classes, for the cells that fine-tune "
  "without meta-training for it (conv4_transfer, mann_fine_tune).",
)
TUNE_MAX_INNER_STEPS = flags.DEFINE_integer(
  "tune_max_inner_steps",
  10,
  "Most test-time SGD steps tried for those cells; the best (rate, steps >= 1) on the "
  "validation classes is used on the test tasks.",
  lower_bound=1,
)
NUM_TUNE_TASKS = flags.DEFINE_integer(
  "num_tune_tasks", 200, "Validation tasks per rate tried.", lower_bound=1
)
NUM_TASKS = flags.DEFINE_integer("num_tasks", 600, "Test tasks per cell and seed.", lower_bound=1)
EVAL_TRANSFORM = flags.DEFINE_string(
  "eval_transform",
  None,
  "Also score every cell on the same test tasks with each image "
  "sheared then scaled about its centre, e.g. 'shear=0.5,scale=0.75' (x += shear * y; "
  "scale < 1 shrinks the character). Unset: in distribution only.",
)
OOD_SWEEP = flags.DEFINE_string(
  "ood_sweep",
  "shear=0.25;shear=0.5;shear=1;scale=0.75;scale=0.5",
  "Out of distribution, a sweep: distortions separated by ';' (each as --eval_transform), "
  "every one scored on the same test tasks for every cell and seed at its last "
  "checkpoint ('' for none).",
)
OOD_TEST_SHOTS = flags.DEFINE_list(
  "ood_test_shots",
  ["5", "10"],
  "Shots at test beyond the training's, each scored on tasks of that many shots for every "
  "cell and seed (same ways; more ways at test need wider heads than the cells have).",
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
# Santoro's image size for every cell: the memory-only cells read 20x20 pixels, and the
# cells pair task by task only where they see the same images.
flags.FLAGS.set_default("image_size", 20)


def _data_flags() -> list[str]:
  """The data flags given on this command line, and the grid's image size, passed on to
  every cell (paths made absolute: the cells run from the repository root)."""
  given = []
  for flag in flags.FLAGS.get_flags_for_module(data_flags):
    if not flag.present and flag.name != "image_size":
      continue
    if flag.name in _PATH_FLAGS and flag.value:
      given.append(f"--{flag.name}={os.path.abspath(flag.value)}")
    else:
      given.append(flag.serialize())
  return given


def _budget(cell: Cell) -> int:
  """Meta-steps of the cell that trains the cell's run."""
  trainer = CELLS[cell.trained_by] if cell.trained_by else cell
  return MEMORY_ONLY_BUDGET_STEPS.value if trainer.memory_only else BUDGET_STEPS.value


def _kept_steps(budget: int) -> list[int]:
  """--keep_checkpoints_at up to the budget, and the budget."""
  steps = common.kept_steps(KEEP_CHECKPOINTS_AT.value)
  return sorted({step for step in steps if step < budget} | {budget})


def _train(name: str, cell: Cell, workdir: str, seed: str) -> None:
  budget = _budget(cell)
  results = common.read_json(os.path.join(workdir, "results.json"))
  if results is not None and results["num_steps"] == budget:
    print(f"ablate: seed {seed} {name}: trained ({budget} steps), kept", flush=True)
    return
  assert cell.flagfile is not None, f"{name} trains, so it names a flagfile"
  common.run_binary(
    [
      "experiments.train",
      f"--flagfile={os.path.join(CONFIGS, cell.flagfile)}",
      *cell.train_flags,
      *_data_flags(),
      f"--num_steps={budget}",
      f"--seed={seed}",
      f"--keep_checkpoints_at={','.join(map(str, _kept_steps(budget)))}",
      f"--workdir={workdir}",
      *TRAIN_FLAGS.value,
    ],
    f"seed {seed} {name}: training",
    driver="ablate",
  )


def _tune(name: str, cell: Cell, workdir: str, seed: str) -> dict:
  """The test-time (inner_lr, num_steps >= 1) with the best mean accuracy on
  --num_tune_tasks validation tasks, each of --tune_inner_lrs scored after up to
  --tune_max_inner_steps steps (tuning_<adaptation>.json, redone when stale):
  {inner_lr, num_steps, accuracy, ci95, by_inner_lr: {rate: {accuracy_by_steps,
  ci95_by_steps}}, checkpoint_step, num_tasks, max_inner_steps}."""
  rates = _tune_rates()
  budget = _budget(cell)
  path = os.path.join(workdir, f"tuning_{cell.adaptation}.json")
  tuning = common.read_json(path)
  wanted = {
    "checkpoint_step": budget,
    "num_tasks": NUM_TUNE_TASKS.value,
    "max_inner_steps": TUNE_MAX_INNER_STEPS.value,
    "inner_lrs": rates,
  }
  if tuning is not None and all(tuning.get(k) == v for k, v in wanted.items()):
    return tuning
  by_rate = {}
  for rate in rates:
    output = f"validation_{cell.adaptation}_lr{rate:g}.json"
    report = common.read_json(os.path.join(workdir, output))
    if (
      report is None
      or report["checkpoint_step"] != budget
      or report["num_tasks"] != NUM_TUNE_TASKS.value
      or report["num_eval_inner_steps"] != TUNE_MAX_INNER_STEPS.value
    ):
      common.run_binary(
        [
          "experiments.evaluate",
          f"--workdir={workdir}",
          "--split=validation",
          f"--num_tasks={NUM_TUNE_TASKS.value}",
          f"--output_name={output}",
          "--noreads_zeroed_control",
          *cell.eval_flags,
          *_data_flags(),
          f"--inner_lr={rate}",
          f"--num_eval_inner_steps={TUNE_MAX_INNER_STEPS.value}",
        ],
        f"seed {seed} {name}: tuning on the validation classes (inner_lr {rate:g})",
        driver="ablate",
      )
      report = common.require_json(os.path.join(workdir, output), written_by="experiments.evaluate")
    by_rate[f"{rate:g}"] = {k: report[k] for k in ("accuracy_by_steps", "ci95_by_steps")}
  # The best mean; ties go to the fewer steps, then the smaller rate.
  candidates = [
    (entry["accuracy_by_steps"][str(steps)], -steps, -rate, rate, steps)
    for rate, entry in zip(rates, by_rate.values())
    for steps in range(1, TUNE_MAX_INNER_STEPS.value + 1)
  ]
  accuracy, _, _, best_rate, best_steps = max(candidates)
  tuning = {
    **wanted,
    "inner_lr": best_rate,
    "num_steps": best_steps,
    "accuracy": accuracy,
    "ci95": by_rate[f"{best_rate:g}"]["ci95_by_steps"][str(best_steps)],
    "by_inner_lr": by_rate,
  }
  files.write_json(path, tuning)
  print(
    f"ablate: seed {seed} {name}: chose inner_lr {best_rate:g}, {best_steps} steps "
    f"(validation {100 * accuracy:.2f} %); wrote {path}",
    flush=True,
  )
  return tuning


def _ood_specs() -> list[str]:
  """--ood_sweep's distortions, each checked (one line for a bad one)."""
  specs = [spec.strip() for spec in OOD_SWEEP.value.split(";") if spec.strip()]
  for spec in specs:
    augment.parse_distortion(spec)
  return specs


def _ood_shots() -> list[int]:
  """--ood_test_shots above the training's shots, or one line for a bad value."""
  try:
    shots = [int(s) for s in OOD_TEST_SHOTS.value]
  except ValueError:
    shots = [0]
  if shots and min(shots) < 1:
    raise errors.UserInputError(
      f"--ood_test_shots={','.join(OOD_TEST_SHOTS.value)}: give positive integers, e.g. 5,10"
    )
  return [s for s in shots if s > data_flags.NUM_SHOTS.value]


def _tune_rates() -> list[float]:
  return common.positive_rates("tune_inner_lrs", TUNE_INNER_LRS.value)


def _test_flags(name: str, cell: Cell, workdir: str, seed: str) -> tuple[list[str], dict]:
  """The flags of the cell's test evaluations (its own, the grid's data flags and, for a
  tuned cell, the rate and steps chosen on the validation classes) and the tuning ({}
  for an untuned cell)."""
  test_flags = [*cell.eval_flags, *_data_flags()]
  if not cell.tuned:
    return test_flags, {}
  tuning = _tune(name, cell, workdir, seed)
  return test_flags + [
    f"--inner_lr={tuning['inner_lr']}",
    f"--num_eval_inner_steps={tuning['num_steps']}",
  ], tuning


def _stale(report: Optional[dict], cell: Cell, workdir: str, tuning: dict) -> bool:
  """Whether a test report is missing or was scored otherwise than now wanted."""
  if (
    report is None
    or report["checkpoint_step"] != _budget(cell)
    or report["num_tasks"] != NUM_TASKS.value
    # A memory cell's report from before the reads-zeroed control, or any from before
    # per-task scores (the paired comparisons need them): scored again.
    or (cell.memory.startswith("mann") and "reads_zeroed" not in report)
    or "per_task" not in report
  ):
    return True
  return _tuning_differs(report, report["overrides"], workdir, tuning)


def _tuning_differs(report: dict, overrides: dict, workdir: str, tuning: dict) -> bool:
  """Whether a tuned cell's report was scored with other steps or rate than the tuning's
  (False for an untuned cell)."""
  if not tuning:
    return False
  run_inner_lr = common.require_json(
    os.path.join(workdir, "flags.json"), written_by="experiments.train"
  )["inner_lr"]
  return (
    report["num_eval_inner_steps"] != tuning["num_steps"]
    or overrides.get("inner_lr", run_inner_lr) != tuning["inner_lr"]
  )


def _evaluate(
  name: str,
  cell: Cell,
  workdir: str,
  seed: str,
  output_name: str,
  transform: Optional[str],
  test_flags: list[str],
  tuning: dict,
) -> dict:
  """The cell's eval report, evaluating its run's last checkpoint when not done yet."""
  path = os.path.join(workdir, output_name)
  report = common.read_json(path)
  if _stale(report, cell, workdir, tuning):
    common.run_binary(
      [
        "experiments.evaluate",
        f"--workdir={workdir}",
        f"--num_tasks={NUM_TASKS.value}",
        f"--output_name={output_name}",
        *test_flags,
        *([f"--eval_transform={transform}"] if transform else []),
      ],
      f"seed {seed} {name}: evaluating" + (f" ({transform})" if transform else ""),
      driver="ablate",
    )
    report = common.require_json(path, written_by="experiments.evaluate")
  assert report is not None  # _stale is true for a missing report
  return report


def _curve(
  name: str,
  cell: Cell,
  workdir: str,
  seed: str,
  transform: Optional[str],
  test_flags: list[str],
  tuning: dict,
) -> list[dict]:
  """The cell's kept checkpoints scored on the test tasks (eval_kept_checkpoints*.json,
  scored when missing or stale): [{step, train_hours, accuracy, ci95, num_tasks}]; []
  for a run trained before it kept checkpoints. A shipped run whose kept checkpoints were
  removed once scored gives its report's curve."""
  output = "eval_kept_checkpoints" if cell.trained_by is None else f"eval_kept_{cell.adaptation}"
  if transform:
    output += "_" + ablation_report.transform_suffix(transform)
  path = os.path.join(workdir, f"{output}.json")
  report = common.read_json(path)
  kept = [step for step, _ in training.kept_checkpoints(workdir)]
  if not kept and report is None:
    return []
  if kept and (
    report is None
    or [r["checkpoint_step"] for r in report["by_checkpoint"]] != kept
    or report["by_checkpoint"][0]["num_tasks"] != NUM_TASKS.value
    or _tuning_differs(report["by_checkpoint"][-1], report["overrides"], workdir, tuning)
  ):
    common.run_binary(
      [
        "experiments.evaluate",
        f"--workdir={workdir}",
        f"--num_tasks={NUM_TASKS.value}",
        "--kept_checkpoints",
        "--noreads_zeroed_control",
        f"--output_name={output}.json",
        *test_flags,
        *([f"--eval_transform={transform}"] if transform else []),
      ],
      f"seed {seed} {name}: evaluating its kept checkpoints"
      + (f" ({transform})" if transform else ""),
      driver="ablate",
    )
    report = common.require_json(path, written_by="experiments.evaluate")
  assert report is not None  # read above, or written just now
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
  if not names:
    raise errors.UserInputError(f"--cells is empty; name one or more of {', '.join(CELLS)}")
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
  _tune_rates()
  ood_specs, ood_shots = _ood_specs(), _ood_shots()
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
      test_flags, tuning = _test_flags(name, cell, workdir, seed)
      report = _evaluate(name, cell, workdir, seed, f"{output}.json", None, test_flags, tuning)
      results = common.read_json(os.path.join(workdir, "results.json"))
      row = rows.setdefault(
        name,
        {
          "memory": cell.memory,
          "adaptation": cell.adaptation,
          "trained_by": cell.trained_by,
          "recipe": cell.recipe,
          "per_seed": {},
          "per_seed_transformed": {},
          "per_seed_ood": {},
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
      row["per_seed"][seed]["curve"] = _curve(name, cell, workdir, seed, None, test_flags, tuning)
      if tuning:
        row["per_seed"][seed]["tuning"] = {
          k: tuning[k] for k in ("inner_lr", "num_steps", "accuracy", "ci95")
        }
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
          test_flags,
          tuning,
        )
        row["per_seed_transformed"][seed] = {
          k: shifted[k] for k in ("accuracy", "ci95", "num_tasks", "eval_transform")
        }
        row["per_seed_transformed"][seed]["curve"] = _curve(
          name, cell, workdir, seed, transform, test_flags, tuning
        )
        per_task[(name, seed, "transformed")] = (shifted["tasks_digest"], shifted["per_task"])
      # The sweep: each distortion, then each larger shot count, at the last checkpoint.
      sweep = [
        (spec, f"{output}_{ablation_report.transform_suffix(spec)}.json", spec, [])
        for spec in ood_specs
      ]
      sweep += [
        (f"{shots} shots", f"{output}_test_{shots}_shot.json", None, [f"--num_shots={shots}"])
        for shots in ood_shots
      ]
      for label, output_name, spec, extra in sweep:
        scored = _evaluate(name, cell, workdir, seed, output_name, spec, test_flags + extra, tuning)
        row["per_seed_ood"].setdefault(label, {})[seed] = {
          k: scored[k] for k in ("accuracy", "ci95", "num_tasks", "tasks_digest")
        }
  for row in rows.values():
    row["pooled"] = ablation_report.pooled(list(row["per_seed"].values()))
    row["pooled_ood"] = {
      label: ablation_report.pooled(list(by_seed.values()))
      for label, by_seed in row["per_seed_ood"].items()
    }
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
    "memory_only_budget_steps": MEMORY_ONLY_BUDGET_STEPS.value,
    "image_size": data_flags.IMAGE_SIZE.value,
    "seeds": seeds,
    "num_tasks": NUM_TASKS.value,
    "eval_transform": transform,
    "ood_sweep": ood_specs,
    "ood_test_shots": ood_shots,
    "cells": rows,
    "comparisons": _comparisons(per_task, transform),
  }
  files.write_json(os.path.join(grid_dir, "ablation.json"), grid)
  ablation_report.write_table(grid, os.path.join(grid_dir, "ablation.md"))
  ablation_report.plot(grid, os.path.join(grid_dir, "ablation.png"))
  curves = ablation_report.plot_curves(grid, os.path.join(grid_dir, "ablation_curves.png"))
  if ood_specs or ood_shots:
    ablation_report.plot_ood(grid, os.path.join(grid_dir, "ablation_ood.png"))
  print(
    f"ablate: {len(names)} cells x {len(seeds)} seeds in {time.time() - start:.0f} s; "
    f"wrote {os.path.join(grid_dir, 'ablation.md')} (.json, .png"
    + (", ablation_curves.png)" if curves else ")")
  )


if __name__ == "__main__":
  common.run(main)
