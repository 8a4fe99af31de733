"""benchmarks/step_time.py's rows: one row's figures merged over rounds, and the ratios
between the rows of a setting (here, without flags, so that tests import it)."""

import statistics


def median_over_rounds(results: list[dict]) -> dict:
  """One row's figures over its rounds: the median seconds per step (and the figures
  derived from it), the median first call and trace, the largest peak RSS."""
  median = statistics.median(r["seconds_per_step"] for r in results)
  merged = dict(results[0])
  merged.update(
    seconds_per_step=median,
    first_call_seconds=statistics.median(r["first_call_seconds"] for r in results),
    peak_rss_mb=max(r["peak_rss_mb"] for r in results),
    tasks_per_second=results[0]["tasks_per_second"] * results[0]["seconds_per_step"] / median,
  )
  if "trace_seconds" in merged:  # ours; the peer's step has no trace
    merged["trace_seconds"] = statistics.median(r["trace_seconds"] for r in results)
  if len(results) > 1:
    merged["seconds_per_step_rounds"] = [r["seconds_per_step"] for r in results]
    for key in ("min", "max"):
      merged.pop(key, None)  # one round's own spread; the rounds' seconds say more
  return merged


def precisions_with_float32(precisions) -> list[str]:
  """float32 always (every ratio's reference), then the other precisions."""
  return ["float32"] + [p for p in precisions if p != "float32"]


def row_key(key: str, precision: str) -> str:
  """The row of `key` (ours_<mapping>, ...) in `precision`: float32's has no suffix."""
  return key if precision == "float32" else f"{key}_{precision}"


def add_ratios(entry: dict, models, mappings, precisions) -> None:
  """Each row's time over its reference's: mixed over float32, a sequence model over
  conv4 (same mapping), ours over the peer's float32 and autocast bfloat16 steps."""
  seconds = lambda key: entry[key]["seconds_per_step"]
  precisions = precisions_with_float32(precisions)
  for model_name in models:
    for mapping in mappings:
      key = f"ours_{mapping}" if model_name == "conv4" else f"ours_{model_name}_{mapping}"
      for precision in precisions[1:]:
        entry[f"ratio_{key[len('ours_') :]}_{precision}_to_float32"] = seconds(
          row_key(key, precision)
        ) / seconds(key)
      if model_name != "conv4" and f"ours_{mapping}" in entry:
        entry[f"ratio_{model_name}_{mapping}_to_conv4"] = seconds(key) / seconds(f"ours_{mapping}")
  if "peer" not in entry:
    return
  for mapping in mappings:
    if "peer_autocast_bfloat16" in entry:
      entry[f"ratio_{mapping}_mixed_bfloat16_to_peer_autocast_bfloat16"] = seconds(
        f"ours_{mapping}_mixed_bfloat16"
      ) / seconds("peer_autocast_bfloat16")
    for precision in precisions:
      row = row_key(f"ours_{mapping}", precision)
      entry[f"ratio_{row[len('ours_') :]}_to_peer"] = seconds(row) / seconds("peer")
