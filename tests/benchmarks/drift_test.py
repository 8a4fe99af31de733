"""benchmarks/drift.py's summary of a log: medians of the first and last windows."""

import pytest

from benchmarks import drift


def test_windows_of_a_run_that_slows_and_grows():
  # 1 traced step, then 10 steps of 0.1 s at 500 MiB, then 10 of 0.3 s at 520 MiB.
  records, seconds = [{"step": 1, "train_seconds": 5.0, "rss_mib": 480.0}], 5.0
  for step in range(2, 22):
    late = step > 11
    seconds += 0.3 if late else 0.1
    records.append({"step": step, "train_seconds": seconds, "rss_mib": 520.0 if late else 500.0})
  records.insert(5, {"step": 5, "validation_accuracy": 0.5})  # not a train line
  summary = drift.summarise(records, window=10)
  assert summary["num_steps"] == 21
  assert summary["first_window_median_step_seconds"] == pytest.approx(0.1)
  assert summary["last_window_median_step_seconds"] == pytest.approx(0.3)
  assert summary["step_time_last_over_first"] == pytest.approx(3.0)
  assert summary["rss_growth_mib"] == pytest.approx(20.0)
  with pytest.raises(ValueError, match="need at least"):
    drift.summarise(records, window=11)
