"""Tests of experiments/plot_accuracy_by_instance.py: the table holds the reports' numbers."""

import json

from tests.experiments import binaries


def test_writes_a_png_and_a_table_of_the_reports(tmp_path):
  paths = []
  for name, accuracy in (("a", [0.3, 0.8, 0.9] + [0.95] * 7), ("b", [0.2, 0.5] + [0.6] * 8)):
    path = tmp_path / f"{name}.json"
    path.write_text(
      json.dumps(
        {
          "accuracy_by_instance": accuracy,
          "ci95_by_instance": [0.01] * 10,
          "num_tasks": 600,
          "checkpoint_step": 1234,
        }
      )
    )
    paths.append(f"{name.upper()}={path}")
  out = tmp_path / "plot.png"
  result = binaries.run("plot_accuracy_by_instance", f"--runs={','.join(paths)}", f"--out={out}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  table = (tmp_path / "plot.md").read_text().splitlines()
  assert table[2] == (
    "| A | 30.0 +- 1.0 | 80.0 +- 1.0 | 90.0 +- 1.0 | 95.0 +- 1.0 | "
    "95.0 +- 1.0 | 95.0 +- 1.0 | 600 | 1234 |"
  )
  assert table[3].startswith("| B | 20.0 +- 1.0 | 50.0 +- 1.0 | 60.0")
  assert table[4] == (
    "| MANN (Santoro et al. 2016) | 36.4 | 82.8 | 91.0 | 92.6 | 94.9 | 98.1 | | |"
  )


def test_a_missing_report_is_one_clear_line(tmp_path):
  line = binaries.one_error_line(
    binaries.run(
      "plot_accuracy_by_instance", f"--runs=X={tmp_path}/none.json", f"--out={tmp_path}/p.png"
    )
  )
  assert "none.json not found" in line
  assert not (tmp_path / "p.png").exists()
