"""Running the experiment binaries as a user does: subprocesses from the repository root."""

import json
import os
import subprocess
import sys

from tests import conftest


def run(binary, *flags) -> subprocess.CompletedProcess:
  """`python -m experiments.BINARY FLAGS...` from the repository root (600 s at most)."""
  return subprocess.run(
    [sys.executable, "-m", f"experiments.{binary}", *flags],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )


def run_ok(binary, *flags):
  """run, asserting the binary succeeded."""
  result = run(binary, *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def read_json(path):
  """A JSON file the binary wrote."""
  with open(path) as f:
    return json.load(f)


def omniglot_flags(omniglot_dir, tfds_data_dir):
  """The flags that read the test Omniglot data offline."""
  return ["--dataset=omniglot", f"--omniglot_dir={omniglot_dir}", f"--data_dir={tfds_data_dir}"]


def one_error_line(result) -> str:
  """The one `error:` line of a run refused for bad input (exit 2, no traceback)."""
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1, result.stderr[-2000:]
  return lines[0]
