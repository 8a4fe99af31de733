r"""A binary's start-up: seconds from process start to the end of its first meta-step.

  python -m benchmarks.startup --omniglot_dir=../shared/data/omniglot \
      --out=results/startup.json
  python -m benchmarks.startup ... --checkout=/tmp/before   # another commit's tree
  python -m benchmarks.startup ... --baseline_checkout=/tmp/before   # both, taking turns

Runs `python -m experiments.train --flagfile=F --num_steps=1 --num_validation_tasks=0`
for each flagfile, --repeats times, each in a fresh workdir, after one unrecorded run
that prepares the decoded images (so every recorded run reads them from the cache, as
every run after a machine's first does). Two clocks per run:
  - seen from here: from just before the process is started to the moment its log
    prints "first call of" (the trainer's line at the end of the first call), which
    every version of the trainer prints, so a checkout from before the in-process
    figures is measured the same way;
  - from results.json, where the trainer writes them: the process's age at main() (the
    imports), after the data, after the learner, and at the first call's end; the first
    call's seconds, and of those its trace alone (None from a trainer without it).
Medians over the repeats; the machine is shared, so compare figures from one run.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

from absl import app
from absl import flags

from benchmarks import report as report_lib

FLAGFILES = flags.DEFINE_list(
  "flagfiles",
  [
    f"experiments/configs/maml_omniglot_{setting}.flags"
    for setting in ("5w1s", "5w5s", "20w1s", "20w5s")
  ],
  "Flagfiles of the train binary, relative to --checkout.",
)
REPEATS = flags.DEFINE_integer("repeats", 3, "Recorded runs per flagfile.", lower_bound=1)
OMNIGLOT_DIR = flags.DEFINE_string("omniglot_dir", None, "Folder of the Omniglot zips.")
CHECKOUT = flags.DEFINE_string(
  "checkout", None, "Run the train binary of this source tree (default: this one)."
)
PYTHONPATH = flags.DEFINE_string(
  "pythonpath", None, "Prepended to the binary's PYTHONPATH (e.g. other package versions)."
)
BASELINE_CHECKOUT = flags.DEFINE_string(
  "baseline_checkout",
  None,
  "Also run this source tree's binary, its runs taking turns with the other tree's "
  "(e.g. a `git worktree` of the commit before a change): a row per tree and flagfile.",
)
BASELINE_PYTHONPATH = flags.DEFINE_string(
  "baseline_pythonpath", None, "--pythonpath of the baseline tree."
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")

_MARK = "first call of"


def _one_run(command: list[str], checkout: str, env: dict) -> dict:
  """One start; returns the outside clock and the results.json figures."""
  with tempfile.TemporaryDirectory() as workdir:
    started = time.perf_counter()
    process = subprocess.Popen(
      [*command, f"--workdir={workdir}/run"],
      cwd=checkout,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    seen: Optional[float] = None
    tail: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
      if seen is None and _MARK in line:
        seen = time.perf_counter() - started
      tail = (tail + [line])[-20:]
    if process.wait() != 0 or seen is None:
      raise RuntimeError(f"{' '.join(command)} failed:\n{''.join(tail)}")
    with open(os.path.join(workdir, "run", "results.json")) as f:
      results = json.load(f)
  return {
    "seen_from_outside_seconds": round(seen, 2),
    "trace_seconds": results.get("trace_seconds_this_call"),
    "first_call_seconds": results.get("first_step_seconds_this_call"),
    "startup_seconds": results.get("startup_seconds_this_call"),
    "process_age_seconds": results.get("startup_process_age_seconds"),
  }


def _median(runs: list[dict], key: str, sub: str = "") -> Optional[float]:
  values = [(r[key] or {}).get(sub) if sub else r[key] for r in runs]
  present = [float(v) for v in values if v is not None]
  return round(statistics.median(present), 2) if len(present) == len(values) else None


def _tree(checkout: Optional[str], pythonpath: Optional[str]) -> dict:
  """A source tree to start the binary from: its path, commit and environment."""
  checkout = os.path.abspath(checkout or os.path.join(os.path.dirname(__file__), ".."))
  env = dict(os.environ)
  if pythonpath:
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
  commit = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
  ).stdout.strip()
  return {"checkout": checkout, "commit": commit, "pythonpath": pythonpath, "env": env}


def main(argv):
  del argv
  trees = [_tree(CHECKOUT.value, PYTHONPATH.value)]
  if BASELINE_CHECKOUT.value:
    trees.append(_tree(BASELINE_CHECKOUT.value, BASELINE_PYTHONPATH.value))
  rows = []
  for flagfile in FLAGFILES.value:
    command = [sys.executable, "-m", "experiments.train", f"--flagfile={flagfile}"]
    command += ["--num_steps=1", "--num_validation_tasks=0"]
    if OMNIGLOT_DIR.value:
      command.append(f"--omniglot_dir={os.path.abspath(OMNIGLOT_DIR.value)}")
    runs: list[list[dict]] = [[] for _ in trees]
    for tree in trees:
      _one_run(command, tree["checkout"], tree["env"])  # prepares the decoded images if needed
    for repeat in range(REPEATS.value):
      # The trees take turns, first one then the other, so drift falls on both alike.
      order = list(range(len(trees)))
      for index in order if repeat % 2 == 0 else order[::-1]:
        runs[index].append(_one_run(command, trees[index]["checkout"], trees[index]["env"]))
    for tree, tree_runs in zip(trees, runs):
      rows.append(
        {
          "flagfile": flagfile,
          "checkout": tree["checkout"],
          "commit": tree["commit"],
          "command": " ".join(command[1:]) + " --workdir=<fresh>",
          "median_seen_from_outside_seconds": _median(tree_runs, "seen_from_outside_seconds"),
          "median_startup_seconds": _median(tree_runs, "startup_seconds"),
          "median_trace_seconds": _median(tree_runs, "trace_seconds"),
          "median_first_call_seconds": _median(tree_runs, "first_call_seconds"),
          "median_process_age_seconds": {
            milestone: _median(tree_runs, "process_age_seconds", milestone)
            for milestone in ("main", "data_loaded", "learner_built")
          },
          "runs": tree_runs,
        }
      )
      print(
        f"{flagfile} at {tree['commit']}: {rows[-1]['median_seen_from_outside_seconds']} s",
        file=sys.stderr,
      )
  report_lib.emit(
    {
      "trees": [{k: v for k, v in tree.items() if k != "env"} for tree in trees],
      "repeats": REPEATS.value,
      "rows": rows,
    },
    OUT.value,
  )


if __name__ == "__main__":
  app.run(main)
