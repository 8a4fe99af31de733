"""What every benchmark ends with: its JSON report printed, and written atomically, with
the machine it ran on (speeds depend on the CPU's matrix units: bfloat16 gains on AMX,
little on AVX-512 BF16)."""

import json
import os
import platform
from typing import Optional

from mann import files

# The CPU flags that decide what a 16-bit or vectorised kernel can use.
MATRIX_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def machine(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
  """The CPU model, its core count and which of MATRIX_FLAGS it has (Linux's
  /proc/cpuinfo; elsewhere the model from platform and no flags)."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open(cpuinfo_path) as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
          break  # the first processor describes them all
  except OSError:
    pass
  return {
    "cpu_model": model,
    "cpu_count": os.cpu_count(),
    "cpu_flags": [flag for flag in MATRIX_FLAGS if flag in flags],
  }


def emit(report: dict, out: Optional[str]) -> None:
  """Prints `report` with its `machine` (machine()) as indented JSON and, with `out`,
  writes it there (whole or not at all: an interrupted benchmark leaves no half-written
  file)."""
  report = {**report, "machine": machine()}
  print(json.dumps(files.json_safe(report), indent=1))
  if out:
    files.write_json(out, report)
