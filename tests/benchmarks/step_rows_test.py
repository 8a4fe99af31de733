"""benchmarks/step_rows.py: rows merged over rounds, and the ratios between rows."""

import pytest

from benchmarks import step_rows


def _row(seconds, first_call, rss, tasks=32):
  return {
    "seconds_per_step": seconds,
    "min": seconds,
    "max": seconds,
    "first_call_seconds": first_call,
    "tasks_per_second": tasks / seconds,
    "peak_rss_mb": rss,
  }


def test_a_row_over_rounds_takes_the_median_time_and_the_largest_memory():
  merged = step_rows.median_over_rounds(
    [_row(0.5, 3.0, 900.0), _row(0.2, 2.0, 950.0), _row(0.4, 4.0, 800.0)]
  )
  assert merged["seconds_per_step"] == 0.4
  assert merged["seconds_per_step_rounds"] == [0.5, 0.2, 0.4]
  assert merged["first_call_seconds"] == 3.0
  assert merged["peak_rss_mb"] == 950.0
  assert merged["tasks_per_second"] == pytest.approx(32 / 0.4)
  assert "min" not in merged and "max" not in merged
  assert "trace_seconds" not in merged  # the peer's rows have none
  # One round: its own figures, unchanged.
  assert step_rows.median_over_rounds([_row(0.5, 3.0, 900.0)]) == _row(0.5, 3.0, 900.0)


def test_our_rows_over_rounds_take_the_median_trace():
  rounds = [{**_row(0.5, 3.0, 900.0), "trace_seconds": trace} for trace in (1.5, 0.9, 1.1)]
  assert step_rows.median_over_rounds(rounds)["trace_seconds"] == 1.1


def test_ratios_of_mixed_to_float32_and_of_ours_to_both_peer_rows():
  entry = {
    "ours_batched": _row(0.4, 1, 1),
    "ours_batched_mixed_bfloat16": _row(0.3, 1, 1),
    "peer": _row(1.2, 1, 1),
    "peer_autocast_bfloat16": _row(0.6, 1, 1),
  }
  step_rows.add_ratios(entry, ["conv4"], ["batched"], ["mixed_bfloat16"])
  assert entry["ratio_batched_mixed_bfloat16_to_float32"] == pytest.approx(0.75)
  assert entry["ratio_batched_to_peer"] == pytest.approx(1 / 3)
  assert entry["ratio_batched_mixed_bfloat16_to_peer"] == pytest.approx(0.25)
  assert entry["ratio_batched_mixed_bfloat16_to_peer_autocast_bfloat16"] == pytest.approx(0.5)
