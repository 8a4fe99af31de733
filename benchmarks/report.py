"""What every benchmark ends with: its JSON report printed, and written atomically."""

import json
from typing import Optional

from mann import files


def emit(report: dict, out: Optional[str]) -> None:
  """Prints `report` as indented JSON and, with `out`, writes it there (whole or not at
  all: an interrupted benchmark leaves no half-written file)."""
  text = json.dumps(report, indent=1)
  print(text)
  if out:
    with files.atomic_write(out) as tmp_path, open(tmp_path, "w") as f:
      f.write(text + "\n")
