"""Runs one experiments binary in-process on many bad command lines (TensorFlow imported
once), for tests/experiments/bad_input_test.py.

  python -m tests.experiments.bad_input_driver BINARY OUTCOMES.json < cases.json

cases.json: [{"args": [...], "watch": FOLDER or null}, ...]. For each case: the exit
status, the lines written to stderr, and whether FOLDER (a workdir) is as it was before
(the same files, sizes and modification times; absent stays absent).
"""

import contextlib
import importlib
import io
import json
import os
import sys

from absl import flags

from experiments import common


def _snapshot(folder):
  if folder is None or not os.path.exists(folder):
    return None
  state = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      status = os.stat(path)
      state[os.path.relpath(path, folder)] = [status.st_size, status.st_mtime_ns]
  return state


def main():
  binary = importlib.import_module(f"experiments.{sys.argv[1]}")
  cases = json.load(sys.stdin)
  outcomes = []
  for case in cases:
    before = _snapshot(case["watch"])
    flags.FLAGS.unparse_flags()  # every flag back to its default, none present
    stderr = io.StringIO()
    status = 0
    with contextlib.redirect_stderr(stderr):
      try:
        argv = common.parse_flags([sys.argv[1], *case["args"]])
        common.run_main(binary.main, argv)
      except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
      except Exception as e:  # pylint: disable=broad-except  (a bug: reported as such)
        print(f"Traceback: {type(e).__name__}: {e}", file=sys.stderr)
        status = -1
    outcomes.append(
      {
        "status": status,
        "stderr": stderr.getvalue().splitlines(),
        "unchanged": _snapshot(case["watch"]) == before,
      }
    )
  with open(sys.argv[2], "w") as f:
    json.dump(outcomes, f)


if __name__ == "__main__":
  main()
