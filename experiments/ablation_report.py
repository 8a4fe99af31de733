"""The memory x initialisation grid's report: pooled intervals, ablation.md, ablation.png.

experiments.ablate builds the grid dict (see there) and calls these; they read no flags.
"""

import numpy as np

from mann import files


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


# The grid's questions, each a pair of cells whose 95% intervals are compared.
COMPARISONS = (
  ("mann_maml", "lstm_maml", "memory beyond a MAML initialisation"),
  ("mann_episodic", "lstm_episodic", "memory without an initialisation"),
  ("mann_maml", "mann_episodic", "a MAML initialisation beyond memory"),
  ("mann_fine_tune", "mann_episodic", "gradient steps without meta-training for them"),
  ("mann_maml", "conv4_maml", "MAML over the MANN against conv4 MAML"),
  ("conv4_maml", "conv4_transfer", "meta-learning against pretraining (conv4)"),
)


def interval(result: dict) -> tuple[float, float]:
  """(low, high) of accuracy +- ci95, in %."""
  return (100 * (result["accuracy"] - result["ci95"]), 100 * (result["accuracy"] + result["ci95"]))


def compare(first: dict, second: dict) -> str:
  """Whether two results' 95% intervals overlap ("no difference measured") or which
  one lies above the other."""
  (a_low, a_high), (b_low, b_high) = interval(first), interval(second)
  if a_low <= b_high and b_low <= a_high:
    return "intervals overlap: no difference measured"
  return "first higher" if a_low > b_high else "second higher"


def _comparison_lines(grid: dict) -> list[str]:
  keys = [("pooled", "in distribution")]
  if grid["eval_transform"]:
    keys.append(("pooled_transformed", "transformed"))
  lines = [
    "",
    "Comparisons (95% intervals in %, from the table's rows):",
    "",
    "| question | first | second | " + " | ".join(label for _, label in keys) + " |",
    "|---|---|---|" + "---|" * len(keys),
  ]
  cells = grid["cells"]
  for first, second, question in COMPARISONS:
    if first not in cells or second not in cells:
      continue
    entries = []
    for key, _ in keys:
      (a_low, a_high), (b_low, b_high) = interval(cells[first][key]), interval(cells[second][key])
      entries.append(
        f"[{a_low:.2f}, {a_high:.2f}] vs [{b_low:.2f}, {b_high:.2f}]: "
        f"{compare(cells[first][key], cells[second][key])}"
      )
    lines.append(f"| {question} | `{first}` | `{second}` | " + " | ".join(entries) + " |")
  return lines


def write_table(grid: dict, path: str) -> None:
  lines = [
    f"# Memory x initialisation, {grid['data']}",
    "",
    f"Command: `{grid['command']}`",
    "",
    f"Every cell: {grid['budget_steps']} meta-steps, seeds {', '.join(grid['seeds'])}, "
    f"{grid['num_tasks']} test tasks per seed (the same tasks for every cell); "
    "accuracy in % with its 95% interval over the test tasks (pooled over seeds).",
    "",
  ]
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
      + (" (mann_episodic's)" if row["trained_by"] else ""),
      f"{parameters:,}{note}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
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
  axes.set_title(
    f"Memory x initialisation: {grid['data']}, {grid['budget_steps']} "
    f"meta-steps, seed{'s' if len(grid['seeds']) > 1 else ''} "
    f"{','.join(grid['seeds'])}"
  )
  axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
  figure.tight_layout()
  with files.atomic_write(path) as tmp_path:
    figure.savefig(tmp_path, format="png", dpi=120)
  plt.close(figure)
