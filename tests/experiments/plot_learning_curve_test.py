"""Tests of experiments/plot_learning_curve.py on hand-written logs."""

import json

from tests.experiments import binaries


def _log(workdir, losses, cosines=None):
  workdir.mkdir()
  lines = [
    {"step": 10 * (i + 1), "train_loss": loss, "train_accuracy": 1 - loss}
    for i, loss in enumerate(losses)
  ]
  for line, cosine in zip(lines, cosines or []):
    line["train_task_update_cosine"] = cosine
  lines.append(
    {"step": 10 * len(losses), "validation_accuracy": 0.5, "validation_accuracy_ci95": 0.1}
  )
  (workdir / "log.jsonl").write_text("\n".join(json.dumps(record) for record in lines) + "\n")


def test_one_run_and_a_comparison_are_drawn(tmp_path):
  _log(tmp_path / "a", [0.9, 0.5, 0.3])
  _log(tmp_path / "b", [0.8, 0.6, 0.2])
  result = binaries.run("plot_learning_curve", f"--workdir={tmp_path / 'a'}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "a" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
  out = tmp_path / "both.png"
  result = binaries.run(
    "plot_learning_curve",
    f"--workdir={tmp_path / 'a'}",
    f"--compare={tmp_path / 'b'}",
    f"--out={out}",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert out.read_bytes()[:4] == b"\x89PNG"
  # A run that logged its tasks' update cosine gets a third panel.
  _log(tmp_path / "c", [0.8, 0.6, 0.2], cosines=[0.4, 0.1, -0.05])
  with_cosine = tmp_path / "with_cosine.png"
  result = binaries.run(
    "plot_learning_curve",
    f"--workdir={tmp_path / 'c'}",
    f"--compare={tmp_path / 'b'}",
    f"--out={with_cosine}",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  width = lambda png: int.from_bytes(png.read_bytes()[16:20], "big")
  assert width(with_cosine) == 3 * width(out) // 2


def test_a_missing_log_is_one_clear_line(tmp_path):
  _log(tmp_path / "a", [0.9])
  line = binaries.one_error_line(
    binaries.run(
      "plot_learning_curve",
      f"--workdir={tmp_path / 'a'}",
      f"--compare={tmp_path / 'x'}",
      f"--out={tmp_path / 'p.png'}",
    )
  )
  assert "log.jsonl not found" in line and not (tmp_path / "p.png").exists()
