"""Tables of results/memory/README.md, read from each run's eval files (issue 37).

  python3 -m experiments.memory_report --runs_dir=results/memory \
      --baselines=memory_first_lstm,maml_conv4 > /tmp/tables.md

One table per protocol: run, accuracy ± 95% interval, with its reads zeroed, the paired
per-task difference (with reads minus without) and its interval, steps, training
hours (results.json's train_seconds, which counts across resumes) and the CPU that
trained it; with --baselines=RUN,..., also each run minus each baseline, task by task. A
run without a report for a protocol is left out of that protocol's table.
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

from mann.evaluation import metrics

RUNS_DIR = flags.DEFINE_string("runs_dir", "results/memory", "Folder of the runs to tabulate.")
BASELINES = flags.DEFINE_list(
  "baselines",
  [],
  "Runs (folder names under --runs_dir) that every run is compared with, task by task: "
  "a column per baseline gives the paired difference, run minus baseline, with its 95% "
  "interval, where both reports hold per_task scores of the same tasks.",
)

EQUIVALENCE_MARGIN = flags.DEFINE_float(
  "equivalence_margin",
  1.0,
  "Margin of the equivalence test of each baseline column, in accuracy points: a "
  "difference whose two one-sided tests (TOST, alpha 0.05 each) put it within "
  "+-margin is labelled 'equivalent'.",
)

# (title, the files that may hold it, in order, and the test's shots and inner steps, which
# a few-shot report must match: a run trained on 5-shot tasks has its 5-shot test in
# eval.json and its 1-shot one in eval_test_1_shot.json). Runs are trained 1-shot unless
# their row says otherwise.
PROTOCOLS = (
  ("5-way 1-shot, 3 inner steps at test", ("eval.json", "eval_test_1_shot.json"), 1, 3),
  ("5-way 1-shot, no inner step at test", ("eval_0_steps.json",), 1, 0),
  ("5-way 5-shot, 3 inner steps at test", ("eval_test_5_shot.json", "eval.json"), 5, 3),
  ("5-way 5-shot, no inner step at test", ("eval_0_steps.json",), 5, 0),
  ("5-way 10-shot, 3 inner steps at test", ("eval_test_10_shot.json",), 10, 3),
  ("online, 5 classes x 10 instances, no inner step", ("eval_online.json",), None, None),
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


def paired_against(report, baseline_report, margin=0.02):
  """Run minus baseline on the same tasks, '+m.mm ± c.cc' in points, followed by
  ', equivalent' when a TOST puts it within ±margin (a fraction, 0.02 = 2 points);
  '' when the two reports lack per_task scores or were not scored on the same tasks."""
  if not baseline_report or "per_task" not in report or "per_task" not in baseline_report:
    return ""
  if report.get("tasks_digest") != baseline_report.get("tasks_digest"):
    return ""
  if len(report["per_task"]) != len(baseline_report["per_task"]):
    return ""
  differences = np.subtract(report["per_task"], baseline_report["per_task"])
  shown = _percent(*metrics.mean_and_ci95(differences), "+")
  if metrics.equivalence_test(differences, margin)["equivalent"]:
    shown += ", equivalent"
  return shown


def _report(run_dir, names, shots, steps):
  """(file name, report) of the first of `names` in run_dir whose report is the test of
  `shots` shots after `steps` inner steps (None, None: any), or (None, None)."""
  for name in names:
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
      continue
    report = _load(path)
    if shots is None or (
      report.get("num_shots", shots) == shots and report.get("num_eval_inner_steps", steps) == steps
    ):
      return name, report
  return None, None


def _trained_shots(run_dir) -> int:
  path = os.path.join(run_dir, "flags.json")
  return _load(path).get("num_shots", 1) if os.path.isfile(path) else 1


def table(runs_dir, title, names, baselines=(), margin=0.02, shots=None, steps=None):
  """Markdown lines of one protocol's table, or [] when no run has its report.

  names: the file (or files, in order) that may hold a run's report; shots, steps: the
  test a few-shot report must be (None: any); margin: of the baseline columns'
  equivalence test, a fraction.
  """
  names = (names,) if isinstance(names, str) else tuple(names)
  online = names[0] == "eval_online.json"
  baseline_reports = {
    baseline: _report(os.path.join(runs_dir, baseline), names, shots, steps)[1]
    for baseline in baselines
  }
  rows, files = [], set()
  for run in sorted(os.listdir(runs_dir)):
    name, report = _report(os.path.join(runs_dir, run), names, shots, steps)
    if report is None:
      continue
    files.add(name)
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
    cells += [
      paired_against(report, baseline_reports[b], margin) if b != run else "" for b in baselines
    ]
    trained = _trained_shots(os.path.join(runs_dir, run))
    label = f"`{run}`" + (f" (trained {trained}-shot)" if trained != 1 else "")
    rows.append(
      f"| {label} | "
      + " | ".join(cells)
      + f" | {report['checkpoint_step']} | {hours} | {_cpu(results)} |"
    )
  if not rows:
    return []
  against = "".join(f" minus `{b}` |" for b in baselines)
  rule = "---|" * len(baselines)
  if online:
    header = [
      "| run | with memory, instance 1 / 2 / 5 / 10 | overall "
      "| reads zeroed, 1 / 2 / 5 / 10 | overall | difference, overall |"
      + against
      + " steps | hours | CPU |",
      "|---|---|---|---|---|---|" + rule + "---|---|---|",
    ]
  else:
    header = [
      "| run | with memory | reads zeroed | difference |" + against + " steps | hours | CPU |",
      "|---|---|---|---|" + rule + "---|---|---|",
    ]
  shown_files = ", ".join(f"`{n}`" for n in names if n in files)
  return [f"#### {title} ({shown_files})", ""] + header + rows + [""]


VALIDATION_STEPS = (2500, 5000, 7500, 10000)


def validation_table(runs_dir) -> list[str]:
  """Markdown lines: each run's validation accuracy (log.jsonl) at VALIDATION_STEPS and
  its rise over the last of those intervals, to show whether the budget flattened it."""
  rows = []
  for run in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, run, "log.jsonl")
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      records = [json.loads(line) for line in f if line.strip()]
    by_step = {r["step"]: r["validation_accuracy"] for r in records if "validation_accuracy" in r}
    cells = [f"{100 * by_step[s]:.1f}" if s in by_step else "" for s in VALIDATION_STEPS]
    last, before = VALIDATION_STEPS[-1], VALIDATION_STEPS[-2]
    rise = (
      f"{100 * (by_step[last] - by_step[before]):+.1f}" if {last, before} <= set(by_step) else ""
    )
    rows.append(f"| `{run}` | " + " | ".join(cells) + f" | {rise} |")
  if not rows:
    return []
  steps = " | ".join(f"{s:,}" for s in VALIDATION_STEPS)
  return [
    "#### Validation accuracy against meta-steps (`log.jsonl`, %)",
    "",
    f"| run | {steps} | rise over the last {VALIDATION_STEPS[-1] - VALIDATION_STEPS[-2]:,} |",
    "|---|" + "---|" * len(VALIDATION_STEPS) + "---|",
    *rows,
    "",
  ]


def main(argv):
  del argv
  lines = []
  if BASELINES.value:
    lines += [
      f"A `minus` column: the run minus that baseline on the same tasks, with its 95% "
      f"interval; 'equivalent': two one-sided tests (alpha 0.05) put the difference within "
      f"±{EQUIVALENCE_MARGIN.value:g} points.",
      "",
    ]
  for title, names, shots, steps in PROTOCOLS:
    lines += table(
      RUNS_DIR.value,
      title,
      names,
      BASELINES.value,
      EQUIVALENCE_MARGIN.value / 100,
      shots=shots,
      steps=steps,
    )
  lines += validation_table(RUNS_DIR.value)
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
