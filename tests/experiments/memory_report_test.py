"""experiments.memory_report tabulates each run's figures from its own eval files."""

import json
import os

import numpy as np

from experiments import memory_report
from mann.evaluation import metrics


def _write(path, payload):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(payload, f)


def test_tables_read_each_runs_figures_and_leave_out_missing_reports(tmp_path):
  zeroed = {
    "accuracy": 0.5,
    "ci95": 0.02,
    "difference": {"mean": 0.25, "ci95": 0.01, "excludes_zero": True},
    "memory_used": True,
  }
  _write(
    tmp_path / "mann/results.json", {"train_seconds": 1800, "machine": {"cpu_flags": ["amx_bf16"]}}
  )
  _write(
    tmp_path / "mann/eval.json",
    {"accuracy": 0.75, "ci95": 0.0125, "checkpoint_step": 10000, "reads_zeroed": zeroed},
  )
  _write(tmp_path / "lstm/results.json", {"train_seconds": 360, "machine": {"cpu_flags": ["avx2"]}})
  _write(tmp_path / "lstm/eval.json", {"accuracy": 0.8, "ci95": 0.01, "checkpoint_step": 500})

  lines = memory_report.table(str(tmp_path), "5w1s", "eval.json")
  assert "| `lstm` | 80.00 ± 1.00 | no memory | no memory | 500 | 0.10 | AVX2 |" in lines
  assert "| `mann` | 75.00 ± 1.25 | 50.00 ± 2.00 | +25.00 ± 1.00 | 10000 | 0.50 | AMX |" in lines
  assert memory_report.table(str(tmp_path), "online", "eval_online.json") == []


def test_an_online_row_gives_instances_1_2_5_and_10(tmp_path):
  by_instance = [i / 10 for i in range(10)]
  zeroed = {
    "accuracy": 0.2,
    "accuracy_by_instance": [0.1] * 10,
    "difference": {"mean": -0.05, "ci95": 0.01},
    "memory_used": False,
  }
  _write(tmp_path / "mann/results.json", {"train_seconds": 3600})
  _write(
    tmp_path / "mann/eval_online.json",
    {
      "accuracy": 0.45,
      "accuracy_by_instance": by_instance,
      "checkpoint_step": 7,
      "reads_zeroed": zeroed,
    },
  )
  (row,) = [
    line for line in memory_report.table(str(tmp_path), "o", "eval_online.json") if "`mann`" in line
  ]
  assert row == (
    "| `mann` | 0.0 / 10.0 / 40.0 / 90.0 | 45.00 | 10.0 / 10.0 / 10.0 / 10.0 | 20.00 "
    "| -5.00 ± 1.00 (memory unused) | 7 | 1.00 | ? |"
  )


def test_a_baseline_column_is_the_paired_difference_on_the_same_tasks(tmp_path):
  run_scores = [1.0, 1.0, 0.0, 1.0]
  baseline_scores = [1.0, 0.0, 0.0, 0.0]
  for run, scores, digest in (
    ("mann", run_scores, "a"),
    ("lstm", baseline_scores, "a"),
    ("other", run_scores, "b"),
  ):
    _write(tmp_path / run / "results.json", {"train_seconds": 36})
    _write(
      tmp_path / run / "eval.json",
      {
        "accuracy": sum(scores) / 4,
        "ci95": 0.1,
        "checkpoint_step": 1,
        "tasks_digest": digest,
        "per_task": scores,
      },
    )
  lines = memory_report.table(str(tmp_path), "5w1s", "eval.json", ["lstm"])
  assert (
    "| run | with memory | reads zeroed | difference | minus `lstm` | steps | hours | CPU |"
    in lines
  )
  differences = np.subtract(run_scores, baseline_scores)
  mean, ci95 = metrics.mean_and_ci95(differences)
  (mann_row,) = [line for line in lines if "`mann`" in line]
  assert f"| +{100 * mean:.2f} ± {100 * ci95:.2f} |" in mann_row
  assert "equivalent" not in mann_row  # +50 points is no equivalence
  (other_row,) = [line for line in lines if "`other`" in line]
  assert "| no memory | no memory |  | 1 |" in other_row  # other tasks: no comparison


def test_a_baseline_column_says_equivalent_when_the_tost_does():
  rng = np.random.default_rng(0)
  baseline = rng.integers(0, 2, 600).astype(float)
  close = np.where(rng.random(600) < 0.01, 1 - baseline, baseline)  # 1% of tasks flipped
  reports = {
    name: {"per_task": list(scores), "tasks_digest": "a"}
    for name, scores in (("baseline", baseline), ("close", close))
  }
  assert memory_report.paired_against(reports["close"], reports["baseline"], 0.02).endswith(
    ", equivalent"
  )
  assert "equivalent" not in memory_report.paired_against(
    reports["close"], reports["baseline"], 0.001
  )


def test_the_validation_table_reads_log_jsonl_at_its_steps(tmp_path):
  records = [{"step": 2500, "train_loss": 1.0}]
  records += [
    {"step": s, "validation_accuracy": a} for s, a in ((5000, 0.5), (7500, 0.8), (10000, 0.85))
  ]
  os.makedirs(tmp_path / "mann")
  (tmp_path / "mann" / "log.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n")
  lines = memory_report.validation_table(str(tmp_path))
  assert "| `mann` |  | 50.0 | 80.0 | 85.0 | +5.0 |" in lines


def test_a_run_trained_on_5_shot_tasks_sits_in_the_tables_of_its_tests_shots(tmp_path):
  # Its eval.json is a 5-shot test and its eval_test_1_shot.json the 1-shot one; a run
  # trained 1-shot has them the other way round.
  def report(accuracy, shots):
    return {
      "accuracy": accuracy,
      "ci95": 0.01,
      "checkpoint_step": 10,
      "num_shots": shots,
      "num_eval_inner_steps": 3,
    }

  for run, trained in (("one", 1), ("five", 5)):
    _write(tmp_path / run / "results.json", {"train_seconds": 36, "machine": {}})
    _write(tmp_path / run / "flags.json", {"num_shots": trained})
  _write(tmp_path / "one/eval.json", report(0.9, 1))
  _write(tmp_path / "one/eval_test_5_shot.json", report(0.6, 5))
  _write(tmp_path / "five/eval.json", report(0.8, 5))
  _write(tmp_path / "five/eval_test_1_shot.json", report(0.7, 1))

  def rows(shots, names):
    lines = memory_report.table(str(tmp_path), "t", names, shots=shots, steps=3)
    return [line for line in lines if line.startswith("| `")]

  assert rows(1, ("eval.json", "eval_test_1_shot.json")) == [
    "| `five` (trained 5-shot) | 70.00 ± 1.00 | no memory | no memory | 10 | 0.01 | ? |",
    "| `one` | 90.00 ± 1.00 | no memory | no memory | 10 | 0.01 | ? |",
  ]
  assert rows(5, ("eval_test_5_shot.json", "eval.json")) == [
    "| `five` (trained 5-shot) | 80.00 ± 1.00 | no memory | no memory | 10 | 0.01 | ? |",
    "| `one` | 60.00 ± 1.00 | no memory | no memory | 10 | 0.01 | ? |",
  ]
