"""What every benchmark ends with: its JSON report printed, and written atomically, with
the machine it ran on (mann.machine; speeds depend on the CPU's matrix units: bfloat16
gains on AMX, little on AVX-512 BF16)."""

import json
from typing import Optional

from mann import files
from mann import machine


def emit(report: dict, out: Optional[str]) -> None:
  """Prints `report` with its `machine` (mann.machine.describe()) as indented JSON and, with `out`,
  writes it there (whole or not at all: an interrupted benchmark leaves no half-written
  file)."""
  report = {**report, "machine": machine.describe()}
  print(json.dumps(files.json_safe(report), indent=1))
  if out:
    files.write_json(out, report)
