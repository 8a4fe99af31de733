"""mann.machine: the CPU a results file names, read from /proc/cpuinfo."""

from mann import machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""


def test_the_machine_is_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text(CPUINFO)
  got = machine.describe(str(cpuinfo))
  assert got["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
  assert got["cpu_flags"] == ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"]


def test_without_cpuinfo_the_machine_has_no_flags(tmp_path):
  got = machine.describe(str(tmp_path / "missing"))
  assert got["cpu_flags"] == [] and got["cpu_count"] >= 1
