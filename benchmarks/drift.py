r"""Does a long run slow down or grow? Step time and resident memory, early against late.

  python -m benchmarks.drift --omniglot_dir=../shared/data/omniglot --out=results/drift.json

Each setting is an ordinary experiments.train run (a fresh temporary workdir, logging
every step, no validation, one checkpoint at the end) of --steps meta-steps. From its
log.jsonl (train_seconds and rss_mib per step): the median seconds per step and the
median resident memory over the first --window steps after the first (which traces)
and over the last --window steps, and their ratio / difference. A leak shows as memory
that grows from the first window to the last, a slowdown as a ratio above 1.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

from benchmarks import report as report_lib
from experiments import data_flags  # --omniglot_dir, --data_dir (defined once, there)

SETTINGS = {
  # A small MAML setting: conv4 MAML on Omniglot 5w1s, 8 tasks a meta-step.
  "maml_conv4": ["--flagfile=experiments/configs/maml_omniglot_5w1s.flags", "--meta_batch_size=8"],
  # The MANN: MAML over the LRUA memory, Omniglot 5w1s, 4 tasks a meta-step.
  "maml_mann": [
    "--flagfile=experiments/configs/maml_mann_omniglot_5w1s.flags",
    "--meta_batch_size=4",
  ],
}

NAMES = flags.DEFINE_list("settings", list(SETTINGS), f"Runs: {', '.join(SETTINGS)}.")
STEPS = flags.DEFINE_integer("steps", 2000, "Meta-steps of each run.", lower_bound=3)
WINDOW = flags.DEFINE_integer(
  "window", 200, "Steps in the first and the last window.", lower_bound=1
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summarise(records: list[dict], window: int) -> dict:
  """Step time and memory of the first and last windows of a run's train log lines
  (one per step, in order; the first, tracing, step is left out)."""
  steps = [r for r in records if "train_seconds" in r]
  seconds = [b["train_seconds"] - a["train_seconds"] for a, b in zip(steps, steps[1:])]
  memory = [r["rss_mib"] for r in steps[1:]]
  if len(seconds) < 2 * window:
    raise ValueError(f"{len(seconds)} timed steps: need at least 2 x window = {2 * window}")
  first, last = slice(0, window), slice(len(seconds) - window, len(seconds))
  result = {
    "num_steps": steps[-1]["step"],
    "first_window_median_step_seconds": statistics.median(seconds[first]),
    "last_window_median_step_seconds": statistics.median(seconds[last]),
    "first_window_median_rss_mib": statistics.median(memory[first]),
    "last_window_median_rss_mib": statistics.median(memory[last]),
  }
  result["step_time_last_over_first"] = (
    result["last_window_median_step_seconds"] / result["first_window_median_step_seconds"]
  )
  result["rss_growth_mib"] = (
    result["last_window_median_rss_mib"] - result["first_window_median_rss_mib"]
  )
  return result


def main(argv):
  del argv
  data = [
    f"--{flag.name}={os.path.abspath(flag.value)}"
    for flag in (data_flags.OMNIGLOT_DIR, data_flags.DATA_DIR)
    if flag.value
  ]
  report = {"steps": STEPS.value, "window": WINDOW.value, "settings": {}}
  for name in NAMES.value:
    if name not in SETTINGS:
      sys.exit(f"error: --settings: unknown {name}; choose from {', '.join(SETTINGS)}")
    with tempfile.TemporaryDirectory() as workdir:
      command = [
        sys.executable,
        "-m",
        "experiments.train",
        *SETTINGS[name],
        *data,
        f"--num_steps={STEPS.value}",
        "--log_every=1",
        "--num_validation_tasks=0",
        f"--checkpoint_every={STEPS.value}",
        f"--workdir={workdir}",
      ]
      print(f"drift: {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
      subprocess.run(command, cwd=REPO, check=True)
      with open(os.path.join(workdir, "log.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    report["settings"][name] = {"train_flags": SETTINGS[name], **summarise(records, WINDOW.value)}
  report_lib.emit(report, OUT.value)


if __name__ == "__main__":
  app.run(main)
