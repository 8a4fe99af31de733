"""What every benchmark ends with: its JSON report printed, and written atomically."""

import json
from typing import Optional

from mann import files


def emit(report: dict, out: Optional[str]) -> None:
  """Prints `report` as indented JSON and, with `out`, writes it there (whole or not at
  all: an interrupted benchmark leaves no half-written file)."""
  print(json.dumps(files.json_safe(report), indent=1))
  if out:
    files.write_json(out, report)
