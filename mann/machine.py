"""The machine a run or a benchmark ran on, for its results file: speeds and the
kernels that run 16-bit convolutions depend on the CPU's vector and matrix units."""

import os
import platform

# The CPU flags that decide what a 16-bit or vectorised kernel can use.
MATRIX_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def describe(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
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
