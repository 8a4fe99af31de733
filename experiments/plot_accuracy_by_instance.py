r"""Plots accuracy by instance (the online protocol of Santoro et al. 2016) of evaluated
runs beside the paper's Table 1 rows, and writes the same numbers as a Markdown table.

  python -m experiments.plot_accuracy_by_instance \
      --runs=MANN=workdirs/mann/eval.json,LSTM=workdirs/lstm/eval.json \
      --out=results/mann_key_strength_omniglot_online_5way/accuracy_by_instance.png

Each eval.json is an online-protocol report of experiments.evaluate.
"""

import json
import os

from absl import flags
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

from experiments import common
from mann import errors
from mann import files

# Santoro et al. 2016, Table 1, Omniglot, 5 classes, one-hot labels: percent correct at
# the 1st, 2nd, 3rd, 4th, 5th and 10th instance of a class.
PAPER_INSTANCES = (1, 2, 3, 4, 5, 10)
PAPER_ROWS = {
  "MANN (Santoro et al. 2016)": (36.4, 82.8, 91.0, 92.6, 94.9, 98.1),
  "LSTM (Santoro et al. 2016)": (24.4, 49.5, 55.3, 61.0, 63.6, 62.5),
}

RUNS = flags.DEFINE_list("runs", None, "NAME=PATH/eval.json pairs, one per curve.")
OUT = flags.DEFINE_string("out", None, "PNG to write; a .md table is written beside it.")
TITLE = flags.DEFINE_string("title", "Omniglot, 5 classes, online protocol", "Figure title.")
flags.mark_flags_as_required(["runs", "out"])


def _read_runs(pairs: list[str]) -> dict[str, dict]:
  runs = {}
  for pair in pairs:
    name, sep, path = pair.partition("=")
    if not sep or not name or not path:
      raise errors.UserInputError(f"--runs entry {pair!r} is not NAME=PATH")
    if not os.path.exists(path):
      raise errors.UserInputError(f"{path} not found: run experiments.evaluate on the workdir")
    with open(path) as f:
      report = json.load(f)
    if "accuracy_by_instance" not in report:
      raise errors.UserInputError(
        f"{path} is not an online-protocol report (no accuracy_by_instance)"
      )
    runs[name] = report
  return runs


def markdown_table(runs: dict[str, dict]) -> str:
  """Percent correct at the paper's instances, ours (+- 95% CI) then the paper's rows."""
  ordinals = [{1: "1st", 2: "2nd", 3: "3rd"}.get(i, f"{i}th") for i in PAPER_INSTANCES]
  header = "| | " + " | ".join(ordinals) + " | episodes | steps |"
  lines = [header, "|---" * (len(PAPER_INSTANCES) + 3) + "|"]
  for name, report in runs.items():
    accuracy, ci95 = report["accuracy_by_instance"], report["ci95_by_instance"]
    cells = [
      f"{100 * accuracy[i - 1]:.1f} +- {100 * ci95[i - 1]:.1f}" if i <= len(accuracy) else "-"
      for i in PAPER_INSTANCES
    ]
    lines.append(
      f"| {name} | "
      + " | ".join(cells)
      + f" | {report['num_tasks']} | {report['checkpoint_step']} |"
    )
  for name, row in PAPER_ROWS.items():
    lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " | | |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  runs = _read_runs(RUNS.value)
  figure, axis = plt.subplots(figsize=(7, 4.5))
  for name, report in runs.items():
    accuracy = [100 * a for a in report["accuracy_by_instance"]]
    ci95 = [100 * c for c in report["ci95_by_instance"]]
    instances = list(range(1, len(accuracy) + 1))
    axis.errorbar(
      instances,
      accuracy,
      yerr=ci95,
      marker="o",
      capsize=3,
      label=f"{name} (ours, step {report['checkpoint_step']})",
    )
  for (name, row), style in zip(PAPER_ROWS.items(), ("k--", "k:")):
    axis.plot(PAPER_INSTANCES, row, style, marker="x", label=name)
  axis.set_xlabel("instance (presentation of the class within the episode)")
  axis.set_ylabel("percent correct")
  axis.set_ylim(0, 100)
  axis.set_title(TITLE.value)
  axis.legend(fontsize=8)
  figure.tight_layout()
  with files.atomic_write(OUT.value) as tmp_path:
    figure.savefig(tmp_path, dpi=100, format="png")
  table_path = os.path.splitext(OUT.value)[0] + ".md"
  with files.atomic_write(table_path) as tmp_path, open(tmp_path, "w") as f:
    f.write(markdown_table(runs))
  print(f"wrote {OUT.value} and {table_path}")


if __name__ == "__main__":
  common.run(main)
