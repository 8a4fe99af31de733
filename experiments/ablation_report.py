"""The memory x initialisation grid's report: pooled intervals, paired comparisons with
their equivalence tests, accuracy against budget, ablation.md, ablation.png and
ablation_curves.png.

experiments.ablate builds the grid dict (see there) and calls these; they read no flags.
"""

import numpy as np

from mann import files
from mann.data import augment
from mann.evaluation import metrics


def pooled(per_seed: list[dict], key: str = "accuracy") -> dict:
  """Mean and 95% CI over the test tasks of all seeds (equal task counts), rebuilt
  exactly from each seed's mean and 1.96 std / sqrt(n) (population std)."""
  means = np.array([r[key] for r in per_seed])
  n = per_seed[0]["num_tasks"]
  variances = np.array([(r["ci95"] * np.sqrt(n) / 1.96) ** 2 for r in per_seed])
  total_variance = variances.mean() + means.var()
  return {
    key: float(means.mean()),
    "ci95": float(1.96 * np.sqrt(total_variance) / np.sqrt(n * len(per_seed))),
    "num_tasks": n * len(per_seed),
  }


def pooled_reads_zeroed(per_seed: list[dict]) -> dict:
  """A memory cell's reads-zeroed accuracy and paired difference (with reads minus
  without) pooled over seeds as pooled() pools an accuracy, and memory_used: the
  difference's interval excludes 0."""
  accuracy = pooled(per_seed)
  difference = pooled(
    [
      {"difference": r["difference"], "ci95": r["difference_ci95"], "num_tasks": r["num_tasks"]}
      for r in per_seed
    ],
    key="difference",
  )
  return {
    "accuracy": accuracy["accuracy"],
    "ci95": accuracy["ci95"],
    "difference": difference["difference"],
    "difference_ci95": difference["ci95"],
    "memory_used": bool(abs(difference["difference"]) > difference["ci95"]),
    "num_tasks": accuracy["num_tasks"],
  }


def transform_suffix(transform: str) -> str:
  """'shear=0.5,scale=0.75' -> 'shear0p5_scale0p75' (a file-name part)."""
  return transform.replace("=", "").replace(",", "_").replace(".", "p").replace("-", "m")


def _percent(value: float) -> str:
  return f"{100 * value:.2f}"


# The grid's questions, each a pair of cells compared task by task.
COMPARISONS = (
  ("mann_maml", "lstm_maml", "memory beyond a MAML initialisation"),
  ("mann_episodic", "lstm_episodic", "memory without an initialisation"),
  ("mann_maml", "mann_episodic", "a MAML initialisation beyond memory"),
  ("mann_fine_tune", "mann_episodic", "gradient steps without meta-training for them"),
  ("mann_maml", "conv4_maml", "MAML over the MANN against conv4 MAML"),
  ("conv4_maml", "conv4_transfer", "meta-learning against pretraining (conv4)"),
)
EQUIVALENCE_MARGIN = 0.01  # a fraction: differences within ±1 point count as none


def paired_comparison(
  first: list[list[float]], second: list[list[float]], margin: float = EQUIVALENCE_MARGIN
) -> dict:
  """First minus second, task by task, pooled over seeds.

  Args:
    first, second: per seed, the per-task scores of the two cells on that seed's test
      tasks (the same tasks for both, in the same order).
    margin: the equivalence margin, a fraction.

  Returns:
    difference and ci95 (its 95% interval over all tasks), p_equivalence (the TOST's
    p-value at ±margin), margin, num_tasks and verdict: "first higher" or "second
    higher" where the interval excludes 0, "equivalent" where the TOST says so at 0.05,
    else "undecided".
  """
  differences = np.concatenate([np.subtract(a, b) for a, b in zip(first, second)])
  mean, ci95 = metrics.mean_and_ci95(differences)
  tost = metrics.equivalence_test(differences, margin)
  if abs(mean) > ci95:
    verdict = "first higher" if mean > 0 else "second higher"
  else:
    verdict = "equivalent" if tost["equivalent"] else "undecided"
  return {
    "difference": mean,
    "ci95": ci95,
    "p_equivalence": tost["p_value"],
    "margin": margin,
    "num_tasks": int(differences.size),
    "verdict": verdict,
  }


def _comparison_lines(grid: dict) -> list[str]:
  keys = [("in_distribution", "in distribution")]
  if grid["eval_transform"]:
    keys.append(("transformed", "transformed"))
  comparisons = grid.get("comparisons", [])
  if not comparisons:
    return []
  margin = 100 * comparisons[0]["in_distribution"]["margin"]
  lines = [
    "",
    "Comparisons: first minus second, task by task on the shared test tasks, pooled over "
    "the seeds, in points with its 95% interval; a difference whose interval holds 0 is "
    f"'equivalent' where two one-sided tests (alpha 0.05) put it within ±{margin:g} "
    "point, else 'undecided'.",
    "",
    "| question | first | second | " + " | ".join(label for _, label in keys) + " |",
    "|---|---|---|" + "---|" * len(keys),
  ]
  for comparison in comparisons:
    entries = []
    for key, _ in keys:
      c = comparison[key]
      entries.append(
        f"{100 * c['difference']:+.2f} ± {100 * c['ci95']:.2f}: {c['verdict']} "
        f"(TOST p {c['p_equivalence']:.2g})"
      )
    lines.append(
      f"| {comparison['question']} | `{comparison['first']}` | `{comparison['second']}` | "
      + " | ".join(entries)
      + " |"
    )
  return lines


def pooled_curve(per_seed_curves: list[list[dict]]) -> list[dict]:
  """The accuracy-against-budget curve pooled over seeds at the steps every seed kept:
  step, train_hours (the seeds' mean), accuracy and ci95 as pooled() pools them."""
  common_steps = sorted(set.intersection(*[{p["step"] for p in c} for c in per_seed_curves]))
  curve = []
  for step in common_steps:
    points = [next(p for p in c if p["step"] == step) for c in per_seed_curves]
    curve.append(
      {
        "step": step,
        "train_hours": float(np.mean([p["train_hours"] for p in points])),
        **pooled(points),
      }
    )
  return curve


def _curve_lines(grid: dict) -> list[str]:
  cells = {name: row for name, row in grid["cells"].items() if row.get("curve")}
  if not cells:
    return []
  steps = sorted({p["step"] for row in cells.values() for p in row["curve"]})
  lines = [
    "",
    "Accuracy against budget (%, pooled over the seeds, the same test tasks at every step; "
    "hours: training hours at that step, the seeds' mean):",
    "",
    "| cell | " + " | ".join(f"{s} steps" for s in steps) + " |",
    "|---|" + "---|" * len(steps),
  ]
  for name, row in cells.items():
    by_step = {p["step"]: p for p in row["curve"]}
    entries = [
      f"{_percent(by_step[s]['accuracy'])} ± {_percent(by_step[s]['ci95'])} "
      f"({by_step[s]['train_hours']:.2f} h)"
      if s in by_step
      else ""
      for s in steps
    ]
    lines.append(f"| `{name}` | " + " | ".join(entries) + " |")
  return lines


def _ood_labels(grid: dict) -> list[str]:
  return list(grid.get("ood_sweep", [])) + [f"{s} shots" for s in grid.get("ood_test_shots", [])]


def _ood_lines(grid: dict) -> list[str]:
  """The out-of-distribution sweep: each cell's accuracy on the same test tasks under
  each distortion, and with more shots at test than in training."""
  labels = _ood_labels(grid)
  if not labels:
    return []
  lines = [
    "",
    "Out of distribution (%, pooled over the seeds, the last checkpoint): the test tasks "
    "with every image sheared (x += shear * y) or scaled about its centre, and tasks with "
    f"more shots than the {grid['num_shots']} of training:",
    "",
    "| cell | in distribution | " + " | ".join(labels) + " |",
    "|---|---|" + "---|" * len(labels),
  ]
  for name, row in grid["cells"].items():
    pooled_ood = row.get("pooled_ood", {})
    entries = [
      f"{_percent(pooled_ood[label]['accuracy'])} ± {_percent(pooled_ood[label]['ci95'])}"
      if label in pooled_ood
      else ""
      for label in labels
    ]
    base = row["pooled"]
    lines.append(
      f"| `{name}` | {_percent(base['accuracy'])} ± {_percent(base['ci95'])} | "
      + " | ".join(entries)
      + " |"
    )
  return lines


def plot_ood(grid: dict, path: str) -> None:
  """ablation_ood.png: each cell's accuracy against shear (scale 1), against scale
  (shear 0) and against shots at test; the in-distribution score is shear 0, scale 1
  and the training's shots."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  sweeps: dict[str, list[tuple[float, str]]] = {"shear": [], "scale": [], "shots": []}
  for spec in grid.get("ood_sweep", []):
    distortion = augment.parse_distortion(spec)
    if distortion.scale == 1.0:
      sweeps["shear"].append((distortion.shear, spec))
    elif distortion.shear == 0.0:
      sweeps["scale"].append((distortion.scale, spec))
  sweeps["shots"] = [(float(s), f"{s} shots") for s in grid.get("ood_test_shots", [])]
  base_x = {"shear": 0.0, "scale": 1.0, "shots": float(grid["num_shots"])}
  panels = [key for key, points in sweeps.items() if points]
  figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 2, 4.2), squeeze=False)
  for axis, key in zip(axes[0], panels):
    for name, row in grid["cells"].items():
      points = [(base_x[key], row["pooled"])] + [
        (x, row["pooled_ood"][label]) for x, label in sweeps[key] if label in row["pooled_ood"]
      ]
      points.sort(key=lambda p: p[0])
      axis.errorbar(
        [p[0] for p in points],
        [100 * p[1]["accuracy"] for p in points],
        yerr=[100 * p[1]["ci95"] for p in points],
        marker="o",
        capsize=2,
        label=name,
      )
    axis.axhline(100 / grid["num_ways"], color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel(
      {"shear": "shear (scale 1)", "scale": "scale (shear 0)", "shots": "shots at test"}[key]
    )
    axis.set_ylim(0, 100)
  axes[0][0].set_ylabel("test accuracy (%), 95% interval")
  axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
  figure.suptitle(f"Out of distribution: {grid['data']}, seeds {','.join(grid['seeds'])}")
  figure.tight_layout()
  with files.atomic_write(path) as tmp_path:
    figure.savefig(tmp_path, format="png", dpi=120)
  plt.close(figure)


def _recipe_lines(grid: dict) -> list[str]:
  """The cell list: each cell's recipe and why, and the test-time rate and steps that a
  tuned cell chose on the validation classes."""
  lines = ["Cells, each by its recipe:", ""]
  for name, row in grid["cells"].items():
    if "recipe" not in row:  # a grid from before recipes were recorded
      return []
    line = f"- `{name}`: {row['recipe']}."
    tunings = [r["tuning"] for r in row["per_seed"].values() if "tuning" in r]
    if tunings:
      line += (
        " Chosen per seed: "
        + "; ".join(
          f"seed {seed}: inner_lr {t['inner_lr']:g}, {t['num_steps']} step"
          f"{'s' if t['num_steps'] > 1 else ''} (validation {_percent(t['accuracy'])} +- "
          f"{_percent(t['ci95'])})"
          for seed, t in zip(row["per_seed"], tunings)
        )
        + "."
      )
    lines.append(line)
  return lines + [""]


def write_table(grid: dict, path: str) -> None:
  lines = [
    f"# Memory x initialisation, {grid['data']}",
    "",
    f"Command: `{grid['command']}`",
    "",
    f"Seeds {', '.join(grid['seeds'])}, {grid['num_tasks']} test tasks per seed (the same "
    f"tasks for every cell), images at {grid.get('image_size', 28)}x"
    f"{grid.get('image_size', 28)}; accuracy in % with its 95% interval over the test tasks "
    "(pooled over seeds).",
    "",
  ]
  lines += _recipe_lines(grid)
  transform = grid["eval_transform"]
  header = ["cell", "memory", "adaptation", "test accuracy"]
  if len(grid["seeds"]) > 1:
    header.append("per seed")
  if transform:
    header.append(f"transformed ({transform})")
  header += ["reads zeroed", "with minus without reads"]
  header += [
    "inner steps at test",
    "meta-steps",
    "training hours" + (" per seed" if len(grid["seeds"]) > 1 else ""),
    "parameters",
  ]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  reference = grid["cells"].get("mann_maml", next(iter(grid["cells"].values())))
  for name, row in grid["cells"].items():
    pooled = row["pooled"]
    cells = [
      f"`{name}`",
      row["memory"],
      row["adaptation"],
      f"{_percent(pooled['accuracy'])} +- {_percent(pooled['ci95'])}",
    ]
    if len(grid["seeds"]) > 1:
      cells.append(
        " / ".join(
          f"{_percent(r['accuracy'])} +- {_percent(r['ci95'])}" for r in row["per_seed"].values()
        )
      )
    if transform:
      shifted = row["pooled_transformed"]
      cells.append(f"{_percent(shifted['accuracy'])} +- {_percent(shifted['ci95'])}")
    zeroed = row.get("pooled_reads_zeroed")
    if zeroed:
      cells += [
        f"{_percent(zeroed['accuracy'])} +- {_percent(zeroed['ci95'])}",
        f"{100 * zeroed['difference']:+.2f} +- {_percent(zeroed['difference_ci95'])}"
        + ("" if zeroed["memory_used"] else " (memory unused)"),
      ]
    else:
      cells += ["", ""]
    parameters = row["num_parameters"]
    difference = parameters / reference["num_parameters"] - 1
    note = (
      f" ({100 * difference:+.0f}% vs mann_maml: more than 10%)" if abs(difference) > 0.10 else ""
    )
    cells += [
      str(row["num_eval_inner_steps"]),
      str(row["num_steps"]),
      " / ".join(f"{r['train_hours']:.2f}" for r in row["per_seed"].values())
      + (f" ({row['trained_by']}'s)" if row["trained_by"] else ""),
      f"{parameters:,}{note}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
  lines += _curve_lines(grid)
  lines += _ood_lines(grid)
  lines += _comparison_lines(grid)
  with files.atomic_write(path) as tmp_path, open(tmp_path, "w") as f:
    f.write("\n".join(lines) + "\n")


def plot(grid: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  names = list(grid["cells"])
  series = [("in distribution", "pooled")]
  if grid["eval_transform"]:
    series.append((f"transformed ({grid['eval_transform']})", "pooled_transformed"))
  width = 0.8 / len(series)
  figure, axes = plt.subplots(figsize=(1.3 * len(names) + 4.5, 4.5))
  for i, (label, key) in enumerate(series):
    positions = np.arange(len(names)) + (i - (len(series) - 1) / 2) * width
    means = [100 * grid["cells"][n][key]["accuracy"] for n in names]
    errors_ = [100 * grid["cells"][n][key]["ci95"] for n in names]
    axes.bar(positions, means, width, yerr=errors_, capsize=3, label=label)
  axes.set_xticks(np.arange(len(names)))
  axes.set_xticklabels(names, rotation=20, ha="right")
  axes.set_ylabel("test accuracy (%), 95% interval")
  axes.set_ylim(0, 100)
  axes.axhline(100 / grid["num_ways"], color="grey", linestyle=":", linewidth=1, label="chance")
  memory_only = grid.get("memory_only_budget_steps")
  axes.set_title(
    f"Memory x initialisation: {grid['data']}, {grid['budget_steps']} meta-steps"
    + (f" ({memory_only} memory only)" if memory_only else "")
    + f", seed{'s' if len(grid['seeds']) > 1 else ''} {','.join(grid['seeds'])}"
  )
  axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
  figure.tight_layout()
  with files.atomic_write(path) as tmp_path:
    figure.savefig(tmp_path, format="png", dpi=120)
  plt.close(figure)


def plot_curves(grid: dict, path: str) -> bool:
  """ablation_curves.png: each cell's accuracy against meta-steps and against training
  hours (dashed: transformed). False, and no file, where no cell kept checkpoints."""
  cells = {name: row for name, row in grid["cells"].items() if row.get("curve")}
  if not cells:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
  for name, row in cells.items():
    for key, style, suffix in (("curve", "-", ""), ("curve_transformed", "--", " (transformed)")):
      curve = row.get(key)
      if not curve:
        continue
      accuracy = [100 * p["accuracy"] for p in curve]
      error = [100 * p["ci95"] for p in curve]
      for axis, x_key in zip(axes, ("step", "train_hours")):
        x = [p[x_key] for p in curve]
        axis.errorbar(
          x, accuracy, yerr=error, linestyle=style, marker="o", capsize=2, label=name + suffix
        )
  for axis, label in zip(axes, ("meta-steps", "training hours")):
    axis.set_xscale("log")
    axis.set_xlabel(label)
    axis.axhline(100 / grid["num_ways"], color="grey", linestyle=":", linewidth=1)
  axes[0].set_ylabel("test accuracy (%), 95% interval")
  axes[0].set_ylim(0, 100)
  axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
  figure.suptitle(f"Accuracy against budget: {grid['data']}, seeds {','.join(grid['seeds'])}")
  figure.tight_layout()
  with files.atomic_write(path) as tmp_path:
    figure.savefig(tmp_path, format="png", dpi=120)
  plt.close(figure)
  return True
