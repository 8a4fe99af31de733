""".ci/run runs README.md's test command, and a failure of any part of it stops CI."""

import os
import re
import subprocess

from tests import conftest

TEST_COMMAND = (
  "ruff check . && ruff format --check . && mypy && python3 -m pytest -q -n 2 && "
  "MANN_DISABLE_BFLOAT16_GROUPED_CONV=1 python3 -m pytest -q -n 2 "
  "tests/meta/mixed_precision_test.py tests/models/grouped_convolution_test.py"
)


def _ci_lines():
  with open(os.path.join(conftest.REPO_ROOT, ".ci", "run")) as f:
    return f.read().splitlines()


def test_ci_runs_the_readmes_test_command():
  with open(os.path.join(conftest.REPO_ROOT, "README.md")) as f:
    readme = f.read()
  assert re.search(rf"^\s+{re.escape(TEST_COMMAND)}$", readme, re.MULTILINE)
  assert any(line.startswith(TEST_COMMAND) for line in _ci_lines())


def test_a_failing_lint_stops_ci_before_what_follows(tmp_path):
  # .ci/run's own line under its own shell options, with a `ruff` that fails.
  (line,) = [line for line in _ci_lines() if line.startswith(TEST_COMMAND)]
  fake_ruff = tmp_path / "ruff"
  fake_ruff.write_text("#!/bin/sh\nexit 3\n")
  fake_ruff.chmod(0o755)
  ran = subprocess.run(
    ["bash", "-c", f"set -euo pipefail\n{line}\necho reached the Bazel steps"],
    capture_output=True,
    text=True,
    env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    timeout=60,
  )
  assert ran.returncode == 3
  assert "reached" not in ran.stdout
