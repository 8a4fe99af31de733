r"""How trained initialisations adapt: fine-tuning curves, which layers move, whether the
representations change, and the support loss's slope and curvature at the start.

  python -m experiments.adaptation --runs=maml=workdirs/maml_omniglot_5w1s,reptile=workdirs/r \
      --random_init=maml --out_dir=results/questions/adaptation

For each NAME=WORKDIR (a run of experiments.train with a gradient-based learner: maml,
fomaml, reptile, transfer, the MAML-initialised MANN) and, with --random_init=NAME, that
run's model at fresh random weights, on --num_tasks test tasks:
  accuracy and loss after each of --steps SGD steps (the run's inner rate and batch
  norm; one compiled step called again and again, mann.analysis.long_adaptation);
  per weight tensor, the relative travel ||w_S - w_0|| / ||w_0|| after the last step
  (null for a weight that starts at 0, e.g. a fresh bias; absolute travel beside it);
  per block of the feed-forward network (conv4, or a sequence model's encoder), linear
  CKA between the query images' activations before and after the last step;
  the support loss's gradient norm and top Hessian eigenvalue at the initialisation
  (--num_curvature_tasks tasks; mann.analysis.curvature);
  sensitivity, on --num_sensitivity_tasks tasks: the cosine between the support and
  query gradients at the initialisation, and the query loss's drop after one inner step
  per unit of parameter change, absolute and relative (batch norm makes raw gradient
  norms depend on the weights' scale; the relative drop does not).
For a Reptile run, the distribution of the cosines between tasks' updates (initial
minus adapted weights) over every pair of --num_update_cosine_tasks tasks.
With --tune_inner_lr=NAME,... (run names, or "random" for the random-init row) each
named row's fine-tuning rate is chosen first: each of --tune_lrs fine-tunes
--num_tune_tasks validation tasks for the last of --steps, and the rate with the best
mean query accuracy (lowest loss for regression) is used on the test tasks (the
validation scores are in the report's tuned_inner_lr).
Writes OUT_DIR/adaptation.json, adaptation.md, accuracy_by_steps.png, travel.png,
cka.png, sensitivity.png and (Reptile) update_cosines.png.
"""

import json
import os
import time

from absl import flags
import numpy as np

from experiments import builders
from experiments import common
from experiments import run_flags
from experiments import run_folder
from mann import errors
from mann import files
from mann import meta
from mann.analysis import adaptation
from mann.analysis import long_adaptation
from mann.data import pipeline
from mann.meta import gradient_learner

RUNS = flags.DEFINE_list("runs", [], "NAME=WORKDIR of each trained run to compare.")
RANDOM_INIT = flags.DEFINE_string(
  "random_init",
  None,
  "NAME of a run in --runs: also adapt its model from fresh random "
  "weights (seed --seed of that run), the 'no meta-learning' row.",
)
STEPS = flags.DEFINE_list(
  "steps",
  ["0", "1", "2", "5", "10", "20", "50", "100"],
  "Fine-tuning step counts to score at (increasing, from 0).",
)
NUM_TASKS = flags.DEFINE_integer("num_tasks", 100, "Test tasks per run.", lower_bound=1)
TASKS_PER_BATCH = flags.DEFINE_integer(
  "tasks_per_batch", 25, "Tasks adapted together.", lower_bound=1
)
NUM_CURVATURE_TASKS = flags.DEFINE_integer(
  "num_curvature_tasks",
  10,
  "Tasks whose gradient norm and top Hessian eigenvalue are "
  "measured (power iteration, 20 Hessian-vector products each).",
  lower_bound=0,
)
NUM_SENSITIVITY_TASKS = flags.DEFINE_integer(
  "num_sensitivity_tasks",
  100,
  "Tasks of the sensitivity measures (support-query gradient cosine, query-loss drop "
  "per unit of parameter change after one step); 0 skips them.",
  lower_bound=0,
)
NUM_UPDATE_COSINE_TASKS = flags.DEFINE_integer(
  "num_update_cosine_tasks",
  100,
  "Reptile runs: tasks whose updates' pairwise cosines are measured (their distribution, "
  "not only the mean the training log gives); 0 skips it.",
  lower_bound=0,
)
TUNE_INNER_LR = flags.DEFINE_list(
  "tune_inner_lr",
  [],
  "Rows whose fine-tuning rate is chosen on the validation classes: run names of --runs, "
  "or 'random' for the --random_init row (a baseline tuned as carefully as the method).",
)
TUNE_LRS = flags.DEFINE_list(
  "tune_lrs", ["0.01", "0.03", "0.1", "0.4"], "Fine-tuning rates tried for --tune_inner_lr."
)
NUM_TUNE_TASKS = flags.DEFINE_integer(
  "num_tune_tasks", 50, "Validation tasks per rate tried.", lower_bound=1
)
OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for adaptation.json and the plots.")
REPLOT = flags.DEFINE_boolean(
  "replot",
  False,
  "Only redraw the plots and adaptation.md from OUT_DIR/adaptation.json (no measuring).",
)
flags.mark_flag_as_required("out_dir")


def _parse_runs() -> list[tuple[str, str]]:
  runs = []
  for item in RUNS.value:
    name, _, workdir = item.partition("=")
    if not name or not workdir:
      raise errors.UserInputError(f"--runs: {item!r} is not NAME=WORKDIR")
    runs.append((name, workdir))
  if not runs:
    raise errors.UserInputError("--runs needs at least one NAME=WORKDIR")
  if RANDOM_INIT.value and RANDOM_INIT.value not in [n for n, _ in runs]:
    raise errors.UserInputError(f"--random_init={RANDOM_INIT.value} names no run of --runs")
  return runs


def _learner(workdir: str, *, restore: bool):
  """(learner, test sampler, checkpoint step or None) of a run, restored or fresh."""
  if restore:
    learner, sampler, step, _ = run_folder.load_trained_run(workdir, split="test")
  else:
    run_folder.restore_run_flags(workdir)
    from experiments import data_flags  # pylint: disable=g-import-not-at-top

    splits = data_flags.class_splits()
    sampler = builders.make_sampler(splits, split="test")
    learner, step = builders.make_learner(builders.make_model(sampler), splits), None
  if not isinstance(learner, gradient_learner.GradientMetaLearner):
    raise errors.UserInputError(
      f"{workdir} is an --algorithm={run_flags.ALGORITHM.value} run: fine-tuning curves "
      f"need a gradient-based learner (maml, fomaml, reptile, transfer)"
    )
  return learner, sampler, step


def _tune_rates() -> list[float]:
  return common.positive_rates("tune_lrs", TUNE_LRS.value)


def _tune_inner_lr(learner, rates: list[float], last_step: int) -> dict:
  """Sets learner.inner_lr to the rate of the best validation score after last_step
  steps; returns {"chosen", "validation": {rate: mean score}, "metric", "num_tasks"}."""
  from experiments import data_flags  # pylint: disable=g-import-not-at-top

  validation = builders.make_sampler(data_flags.class_splits(), split="validation")
  metric = learner.objective.metric_name
  higher_is_better = metric == "accuracy"
  scores = {}
  for rate in rates:
    learner.inner_lr = rate
    tuner = long_adaptation.FineTuner(learner)
    per_task = np.concatenate(
      [
        tuner.scores(batch, checkpoints=[last_step])[metric][:, 0]
        for batch in pipeline.episodes(
          validation, num_episodes=NUM_TUNE_TASKS.value, batch_size=TASKS_PER_BATCH.value
        )
      ]
    )
    scores[f"{rate:g}"] = float(per_task.mean())
  pick = max if higher_is_better else min
  chosen = pick(rates, key=lambda r: scores[f"{r:g}"])
  learner.inner_lr = chosen
  return {
    "chosen": chosen,
    "validation": scores,
    "metric": metric,
    "num_tasks": NUM_TUNE_TASKS.value,
    "steps": last_step,
  }


def _write_table(report: dict, path: str) -> None:
  """adaptation.md: the measures of each initialisation, read from the report."""
  steps = report["steps"]
  runs = report["runs"]
  metric = "accuracy" if all("accuracy_by_steps" in r for r in runs.values()) else "loss"
  scale = 100 if metric == "accuracy" else 1
  cell = lambda d: f"{scale * d['mean']:.2f} +- {scale * d['ci95']:.2f}"
  lines = [
    f"# Fine-tuning from each initialisation ({report['num_tasks']} test tasks)",
    "",
    f"Query {metric}{' (%)' if metric == 'accuracy' else ''} after each number of "
    f"SGD steps on the support set (mean +- 95% CI over the tasks):",
    "",
    "| initialisation | " + " | ".join(str(s) for s in steps) + " |",
    "|---|" + "---|" * len(steps),
  ]
  for name, run in runs.items():
    by_steps = run[f"{metric}_by_steps"]
    lines.append(f"| {name} | " + " | ".join(cell(by_steps[str(s)]) for s in steps) + " |")
  blocks = list(next(iter(runs.values()))["cka_before_after"])
  lines += [
    "",
    f"At the initialisation (support loss) and after {steps[-1]} steps:",
    "",
    "| initialisation | inner rate | gradient norm | top Hessian eigenvalue | "
    + " | ".join(f"CKA {b}" for b in blocks)
    + " |",
    "|---|---|---|---|" + "---|" * len(blocks),
  ]
  for name, run in runs.items():
    measured = [run.get("support_gradient_norm"), run.get("support_top_hessian_eigenvalue")]
    shown = [f"{m['mean']:.3g} +- {m['ci95']:.2g}" if m else "n/a" for m in measured]
    lines.append(
      f"| {name} | {run['inner_lr']:g} | {shown[0]} | {shown[1]} | "
      + " | ".join(
        f"{run['cka_before_after'][b]:.3f}" if b in run["cka_before_after"] else "n/a"
        for b in blocks
      )
      + " |"
    )
  lines += _sensitivity_lines(runs)
  lines += _update_cosine_lines(runs)
  lines += [
    "",
    "Relative travel ||w_S - w_0|| / ||w_0|| per weight tensor is in "
    "adaptation.json (`relative_travel`, `absolute_travel`) and travel.png.",
  ]
  with files.atomic_write(path) as tmp, open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")


_SENSITIVITY = (
  ("support_query_cosine", "cos(support gradient, query gradient)"),
  ("query_loss_drop", "query-loss drop after 1 step"),
  ("query_drop_per_unit_change", "drop / ||w_1 - w_0||"),
  ("query_drop_per_relative_change", "drop / (||w_1 - w_0|| / ||w_0||)"),
)


def _sensitivity_lines(runs: dict) -> list[str]:
  measured = {name: run["sensitivity"] for name, run in runs.items() if "sensitivity" in run}
  if not measured:
    return []
  num_tasks = next(iter(measured.values()))["num_tasks"]
  lines = [
    "",
    f"Sensitivity at the initialisation ({num_tasks} tasks; mean +- 95% CI, then the "
    "median [5%, 95%] over the tasks):",
    "",
    "| initialisation | " + " | ".join(label for _, label in _SENSITIVITY) + " |",
    "|---|" + "---|" * len(_SENSITIVITY),
  ]
  for name, values in measured.items():
    cells = []
    for key, _ in _SENSITIVITY:
      v = values[key]
      q = v["quantiles"]
      cells.append(
        f"{v['mean']:.3g} +- {v['ci95']:.2g}; {q['0.5']:.3g} [{q['0.05']:.3g}, {q['0.95']:.3g}]"
      )
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return lines


def _update_cosine_lines(runs: dict) -> list[str]:
  measured = {n: r["task_update_cosines"] for n, r in runs.items() if "task_update_cosines" in r}
  if not measured:
    return []
  quantiles = list(next(iter(measured.values()))["quantiles"])
  lines = [
    "",
    "Cosines between tasks' updates (initial minus adapted weights), every pair of tasks:",
    "",
    "| initialisation | tasks | pairs | mean | fraction < 0 | "
    + " | ".join(f"q{q}" for q in quantiles)
    + " |",
    "|---|---|---|---|---|" + "---|" * len(quantiles),
  ]
  for name, c in measured.items():
    lines.append(
      f"| {name} | {c['num_tasks']} | {c['num_pairs']} | {c['mean']:.3f} | "
      f"{c['fraction_negative']:.3f} | "
      + " | ".join(f"{c['quantiles'][q]:.3f}" for q in quantiles)
      + " |"
    )
  return lines


def _plot_update_cosines(runs: dict, path: str) -> None:
  """update_cosines.png: the histogram of the pairwise task-update cosines per run."""
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  measured = {n: r["task_update_cosines"] for n, r in runs.items() if "task_update_cosines" in r}
  figure, axes = plt.subplots(figsize=(6.5, 4.2))
  for name, c in measured.items():
    edges = np.array(c["histogram"]["edges"])
    fractions = np.array(c["histogram"]["counts"]) / c["num_pairs"]
    axes.step(edges[:-1], fractions, where="post", label=f"{name} ({c['num_pairs']} pairs)")
  axes.axvline(0.0, color="grey", linestyle=":", linewidth=1)
  axes.set_xlabel("cosine between two tasks' updates")
  axes.set_ylabel("fraction of pairs")
  axes.set_xlim(-1, 1)
  axes.legend(fontsize="small")
  figure.tight_layout()
  with files.atomic_write(path) as tmp:
    figure.savefig(tmp, format="png", dpi=120)
  plt.close(figure)


def _plot_sensitivity(runs: dict, path: str) -> None:
  """sensitivity.png: each measure's distribution over the tasks, one box per run."""
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  measured = {name: run["sensitivity"] for name, run in runs.items() if "sensitivity" in run}
  figure, axes = plt.subplots(1, len(_SENSITIVITY), figsize=(4.2 * len(_SENSITIVITY), 4.2))
  for axis, (key, label) in zip(axes, _SENSITIVITY):
    axis.boxplot([m[key]["per_task"] for m in measured.values()], whis=(5, 95))
    axis.set_xticks(range(1, len(measured) + 1))
    axis.set_xticklabels(list(measured), rotation=30, ha="right", fontsize="small")
    axis.set_title(label, fontsize="medium")
    axis.axhline(0.0, color="grey", linestyle=":", linewidth=1)
  figure.suptitle("Sensitivity at the initialisation (boxes: quartiles; whiskers: 5% to 95%)")
  figure.tight_layout()
  with files.atomic_write(path) as tmp:
    figure.savefig(tmp, format="png", dpi=120)
  plt.close(figure)


def _plots(report: dict, out_dir: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  runs = report["runs"]
  steps = report["steps"]
  figure, axes = plt.subplots(figsize=(6.5, 4.2))
  for name, run in runs.items():
    by_steps = run.get("accuracy_by_steps") or run["loss_by_steps"]
    means = np.array([by_steps[str(s)]["mean"] for s in steps])
    ci = np.array([by_steps[str(s)]["ci95"] for s in steps])
    positions = [max(s, 0.5) for s in steps]  # step 0 drawn at 0.5 on the log axis
    axes.errorbar(
      positions,
      100 * means if "accuracy_by_steps" in run else means,
      yerr=100 * ci if "accuracy_by_steps" in run else ci,
      marker="o",
      capsize=3,
      label=name,
    )
  axes.set_xscale("log")
  axes.set_xticks([max(s, 0.5) for s in steps])
  axes.set_xticklabels([str(s) for s in steps])
  axes.set_xlabel("fine-tuning steps on the support set")
  axes.set_ylabel("query accuracy (%), 95% interval")
  axes.set_title(f"Fine-tuning from each initialisation ({report['num_tasks']} test tasks)")
  axes.legend()
  figure.tight_layout()
  with files.atomic_write(os.path.join(out_dir, "accuracy_by_steps.png")) as tmp:
    figure.savefig(tmp, format="png", dpi=120)
  plt.close(figure)
  for key, label, file_name in (
    ("relative_travel", f"||w_S - w_0|| / ||w_0|| after {steps[-1]} steps", "travel.png"),
    ("cka_before_after", f"linear CKA, query activations, 0 vs {steps[-1]} steps", "cka.png"),
  ):
    # One slot per weight (block) name across the runs, by its last two path parts (the
    # conv4 and a sequence model's encoder share them): a run's bars stand at its own.
    short = lambda n: "/".join(n.split("/")[-2:])
    labels = list(dict.fromkeys(short(n) for run in runs.values() for n in run[key]))
    figure, axes = plt.subplots(figsize=(max(8, 0.3 * len(labels) + 3), 4.2))
    width = 0.8 / len(runs)
    for i, (name, run) in enumerate(runs.items()):
      values = {short(n): v for n, v in run[key].items()}
      bar_positions = np.arange(len(labels)) + (i - (len(runs) - 1) / 2) * width
      heights = [np.nan if values.get(tick) is None else values[tick] for tick in labels]
      axes.bar(bar_positions, heights, width, label=name)
    axes.set_xticks(np.arange(len(labels)))
    axes.set_xticklabels(labels, rotation=60, ha="right", fontsize="small")
    axes.set_ylabel(label)
    axes.legend(fontsize="small")
    figure.tight_layout()
    with files.atomic_write(os.path.join(out_dir, file_name)) as tmp:
      figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
  if any("sensitivity" in run for run in runs.values()):
    _plot_sensitivity(runs, os.path.join(out_dir, "sensitivity.png"))
  if any("task_update_cosines" in run for run in runs.values()):
    _plot_update_cosines(runs, os.path.join(out_dir, "update_cosines.png"))


def main(argv):
  del argv
  if REPLOT.value:
    path = os.path.join(OUT_DIR.value, "adaptation.json")
    if not os.path.exists(path):
      raise errors.UserInputError(f"--replot: {path} not found; run without --replot first")
    with open(path) as f:
      report = json.load(f)
    _plots(report, OUT_DIR.value)
    _write_table(report, os.path.join(OUT_DIR.value, "adaptation.md"))
    print(f"adaptation: redrew the plots and adaptation.md from {path}")
    return
  runs = _parse_runs()
  try:
    steps = [int(s) for s in STEPS.value]
  except ValueError:
    raise errors.UserInputError(f"--steps={','.join(STEPS.value)} must be integers") from None
  if steps != sorted(set(steps)) or steps[0] < 0:
    raise errors.UserInputError(f"--steps must increase from 0 or more, got {steps}")
  start = time.time()
  report = {"steps": steps, "num_tasks": NUM_TASKS.value, "runs": {}}
  rows = [(name, workdir, True) for name, workdir in runs]
  if RANDOM_INIT.value:
    rows.append((f"random ({RANDOM_INIT.value}'s model)", dict(runs)[RANDOM_INIT.value], False))
  tuned = set(TUNE_INNER_LR.value)
  known = {name for name, _ in runs} | ({"random"} if RANDOM_INIT.value else set())
  if tuned - known:
    raise errors.UserInputError(
      f"--tune_inner_lr: {', '.join(sorted(tuned - known))} names no row; use names of "
      f"--runs, or 'random' with --random_init"
    )
  rates = _tune_rates() if tuned else []
  measure = common.library_checks("adaptation")(adaptation.measure_adaptation)
  sensitivity = common.library_checks("adaptation")(adaptation.measure_sensitivity)
  update_cosines = common.library_checks("adaptation")(adaptation.task_update_cosines)
  for name, workdir, restore in rows:
    learner, sampler, checkpoint_step = _learner(workdir, restore=restore)
    tuning = None
    if (name if restore else "random") in tuned:
      print(f"adaptation: {name}: choosing its rate on the validation classes", flush=True)
      tuning = _tune_inner_lr(learner, rates, steps[-1])
      print(f"adaptation: {name}: inner_lr {tuning['chosen']:g} ({tuning['validation']})")
    print(f"adaptation: {name}: {NUM_TASKS.value} tasks, steps {steps}", flush=True)
    report["runs"][name] = {
      "workdir": workdir,
      "checkpoint_step": checkpoint_step,
      "tuned_inner_lr": tuning,
      **measure(
        learner,
        sampler,
        steps=steps,
        num_tasks=NUM_TASKS.value,
        tasks_per_batch=TASKS_PER_BATCH.value,
        num_curvature_tasks=NUM_CURVATURE_TASKS.value,
      ),
    }
    if isinstance(learner, meta.Reptile) and NUM_UPDATE_COSINE_TASKS.value >= 2:
      report["runs"][name]["task_update_cosines"] = update_cosines(
        learner,
        sampler,
        num_tasks=NUM_UPDATE_COSINE_TASKS.value,
        tasks_per_batch=TASKS_PER_BATCH.value,
      )
    if NUM_SENSITIVITY_TASKS.value:
      report["runs"][name]["sensitivity"] = sensitivity(
        learner, sampler, num_tasks=NUM_SENSITIVITY_TASKS.value
      )
  os.makedirs(OUT_DIR.value, exist_ok=True)
  files.write_json(os.path.join(OUT_DIR.value, "adaptation.json"), report)
  _plots(report, OUT_DIR.value)
  _write_table(report, os.path.join(OUT_DIR.value, "adaptation.md"))
  print(
    f"adaptation: {len(rows)} initialisations in {time.time() - start:.0f} s; wrote "
    f"{os.path.join(OUT_DIR.value, 'adaptation.json')} and plots"
  )


if __name__ == "__main__":
  common.run(main)
