"""benchmarks/report.py: every report records the CPU it ran on and is written whole."""

import json

from benchmarks import report
from mann import machine


def test_the_report_written_holds_the_machine(tmp_path, capsys):
  out = tmp_path / "report.json"
  report.emit({"benchmark": "b", "results": [1]}, str(out))
  written = json.loads(out.read_text())
  assert written["results"] == [1] and written["machine"] == machine.describe()
  assert json.loads(capsys.readouterr().out) == written
