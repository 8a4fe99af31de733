"""Tables of results/memory/README.md, read from each run's eval files (issue 37).

  python3 -m experiments.memory_report --runs_dir=results/memory > /tmp/tables.md

One table per protocol: run, accuracy ± 95% interval, with its reads zeroed, the paired
per-task difference (with reads minus without) and its interval, steps, training
hours (results.json's train_seconds, which counts across resumes) and the CPU that
trained it. A run without a
report for a protocol is left out of that protocol's table.
"""

import json
import os

from absl import app
from absl import flags

RUNS_DIR = flags.DEFINE_string("runs_dir", "results/memory", "Folder of the runs to tabulate.")

PROTOCOLS = (
  ("5-way 1-shot, 3 inner steps at test", "eval.json"),
  ("5-way 1-shot, no inner step at test", "eval_0_steps.json"),
  ("5-way 5-shot at test (trained 1-shot)", "eval_test_5_shot.json"),
  ("5-way 10-shot at test (trained 1-shot)", "eval_test_10_shot.json"),
  ("online, 5 classes x 10 instances, no inner step", "eval_online.json"),
)
ONLINE_INSTANCES = (1, 2, 5, 10)


def _percent(value, interval, sign=""):
  return f"{100 * value:{sign}.2f} ± {100 * interval:.2f}"


def _cpu(results):
  """A short name of the CPU that trained the run: step times differ between them."""
  cpu_flags = results.get("machine", {}).get("cpu_flags", [])
  if any(flag.startswith("amx") for flag in cpu_flags):
    return "AMX"
  if "avx512f" in cpu_flags:
    return "AVX-512"
  return "AVX2" if "avx2" in cpu_flags else "?"


def _load(path):
  with open(path) as f:
    return json.load(f)


def _online_cells(report):
  by_instance = report["accuracy_by_instance"]
  return " / ".join(f"{100 * by_instance[i - 1]:.1f}" for i in ONLINE_INSTANCES)


def table(runs_dir, title, name):
  """Markdown lines of one protocol's table, or [] when no run has its report."""
  online = name == "eval_online.json"
  rows = []
  for run in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, run, name)
    if not os.path.isfile(path):
      continue
    report = _load(path)
    results = _load(os.path.join(runs_dir, run, "results.json"))
    hours = f"{results['train_seconds'] / 3600:.2f}"
    zeroed = report.get("reads_zeroed")
    if online:
      overall = f"{100 * report['accuracy']:.2f}"
      cells = [_online_cells(report), overall]
      if zeroed:
        cells += [_online_cells(zeroed), f"{100 * zeroed['accuracy']:.2f}"]
    else:
      cells = [_percent(report["accuracy"], report["ci95"])]
      if zeroed:
        cells.append(_percent(zeroed["accuracy"], zeroed["ci95"]))
    if zeroed:
      difference = zeroed["difference"]
      used = "" if zeroed["memory_used"] else " (memory unused)"
      cells.append(_percent(difference["mean"], difference["ci95"], "+") + used)
    else:
      cells += ["no memory"] * (3 if online else 2)
      cells = cells[: 5 if online else 3]
    rows.append(f"| `{run}` | " + " | ".join(cells) + f" | {report['checkpoint_step']} | {hours} | {_cpu(results)} |")
  if not rows:
    return []
  if online:
    header = [
      "| run | with memory, instance 1 / 2 / 5 / 10 | overall | reads zeroed, 1 / 2 / 5 / 10 | overall | difference, overall | steps | hours | CPU |",
      "|---|---|---|---|---|---|---|---|---|",
    ]
  else:
    header = [
      "| run | with memory | reads zeroed | difference | steps | hours | CPU |",
      "|---|---|---|---|---|---|---|",
    ]
  return [f"#### {title} (`{name}`)", ""] + header + rows + [""]


def main(argv):
  del argv
  lines = []
  for title, name in PROTOCOLS:
    lines += table(RUNS_DIR.value, title, name)
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
