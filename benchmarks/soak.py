r"""Soak: a long sinusoid run killed at random moments and resumed, against the same run
uninterrupted; its final state must be the same, bit for bit, and its memory flat.

  python -m benchmarks.soak --workdir=/tmp/soak --num_steps=300000 --kills=10 \
      --out=results/soak/soak.json

Both runs take --flags (MAML on sinusoids, experiments/configs/maml_sinusoid.flags,
with checkpoints every --checkpoint_every steps) and run at the same time, one
intra-op and one inter-op thread each (--num_threads=1), so the two cores run both.
The killed run is sent SIGKILL (no handler runs) --kills times, each --min_wait_seconds
after its start plus a random wait, uniform up to twice the run's expected training time
over (kills + 1), then restarted at once with the same command; after the last kill it
runs to the end (a run that ends before its kill ends the kills).

The report holds each kill's moment and the step it resumed from; whether every saved
variable of the two final checkpoints is equal (all but the save counter and the
training clock), and the train losses of their log.jsonl; and the resident memory
(rss_mib of log.jsonl) of the uninterrupted process: median of its first and last
quarter of train records and the growth between them.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import report as report_lib

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the two runs (created if missing).")
OUT = flags.DEFINE_string("out", None, "JSON report path (written whole at the end).")
NUM_STEPS = flags.DEFINE_integer("num_steps", 300000, "Meta-steps of each run.", lower_bound=1)
KILLS = flags.DEFINE_integer("kills", 10, "SIGKILLs sent to the killed run.", lower_bound=0)
CHECKPOINT_EVERY = flags.DEFINE_integer(
  "checkpoint_every", 5000, "Meta-steps between checkpoints.", lower_bound=1
)
MIN_WAIT_SECONDS = flags.DEFINE_float(
  "min_wait_seconds",
  10.0,
  "Each kill comes this long after its start (past the start-up, about 6 s) plus a random "
  "share of the run's training time.",
)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
TRAIN_FLAGS = flags.DEFINE_list(
  "flags",
  [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    "--log_every=1000",
    "--num_validation_tasks=0",
  ],
  "Flags of both experiments.train runs (besides --workdir, --num_steps, "
  "--checkpoint_every and --num_threads).",
)
flags.mark_flag_as_required("workdir")


def _command(workdir: str) -> list[str]:
  return [
    sys.executable,
    "-m",
    "experiments.train",
    *TRAIN_FLAGS.value,
    f"--num_steps={NUM_STEPS.value}",
    f"--checkpoint_every={CHECKPOINT_EVERY.value}",
    "--num_threads=1",
    f"--workdir={workdir}",
  ]


def _start(workdir: str, log_name: str) -> subprocess.Popen:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, log_name), "a") as output:
    return subprocess.Popen(_command(workdir), stdout=output, stderr=subprocess.STDOUT)


def _train_records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "log.jsonl")) as f:
    return [r for line in f if "train_loss" in (r := json.loads(line))]


def _final_state(workdir: str) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
  return {
    name: reader.get_tensor(name)
    for name in reader.get_variable_to_shape_map()
    if "train_seconds" not in name and "save_counter" not in name
  }


def _latest_step(workdir: str) -> int:
  from mann import training  # pylint: disable=g-import-not-at-top

  return training.latest_step(workdir) or 0  # None before the first checkpoint


def _memory(records: list[dict]) -> dict:
  rss = [r["rss_mib"] for r in records if r.get("rss_mib") is not None]
  if len(rss) < 8:
    return {"train_records_with_rss": len(rss)}
  quarter = len(rss) // 4
  first, last = statistics.median(rss[:quarter]), statistics.median(rss[-quarter:])
  return {
    "train_records_with_rss": len(rss),
    "first_quarter_median_mib": first,
    "last_quarter_median_mib": last,
    "growth_mib": last - first,
    "max_mib": max(rss),
  }


def main(argv):
  del argv
  root = WORKDIR.value
  whole_dir, killed_dir = os.path.join(root, "uninterrupted"), os.path.join(root, "killed")
  for folder in (whole_dir, killed_dir):
    if os.path.exists(os.path.join(folder, "flags.json")):
      sys.exit(f"error: {folder} holds a run already; give a new --workdir (a soak starts anew)")
  rng = random.Random(SEED.value)
  start = time.monotonic()
  whole = _start(whole_dir, "output.txt")
  # A run's expected training time, from the uninterrupted one's training clock.
  train_seconds = None
  kills = []
  for kill in range(KILLS.value):
    killed = _start(killed_dir, "output.txt")
    started = time.monotonic()
    while train_seconds is None and whole.poll() is None:
      time.sleep(1.0)
      records = _train_records(whole_dir) if os.path.exists(f"{whole_dir}/log.jsonl") else []
      if len(records) >= 3:  # the pace between logs, past the first call's tracing
        first, last = records[1], records[-1]
        pace = (last["train_seconds"] - first["train_seconds"]) / (last["step"] - first["step"])
        train_seconds = pace * NUM_STEPS.value
    # Past the start-up, then uniform over twice an equal share of the training.
    wait = MIN_WAIT_SECONDS.value + rng.uniform(0, 2 * (train_seconds or 0) / (KILLS.value + 1))
    while time.monotonic() - started < wait and killed.poll() is None:
      time.sleep(0.5)
    if killed.poll() is not None:  # ended before its kill: nothing left to interrupt
      break
    killed.kill()
    killed.wait()
    kills.append(
      {
        "kill": kill + 1,
        "after_seconds": round(time.monotonic() - started, 1),
        "resumes_from_step": _latest_step(killed_dir),
      }
    )
    print(f"kill {kill + 1}: {kills[-1]}", file=sys.stderr, flush=True)
  killed = _start(killed_dir, "output.txt")
  processes = {"killed": killed, "uninterrupted": whole}
  statuses, wall = {}, {}
  while len(statuses) < len(processes):  # each run's end, seen within a second
    for name, process in processes.items():
      if name not in statuses and process.poll() is not None:
        statuses[name] = process.returncode
        wall[f"{name}_seconds"] = round(time.monotonic() - start, 1)
    time.sleep(1.0)
  for name, status in statuses.items():
    if status != 0:
      raise RuntimeError(f"the {name} process exited with status {status}")
  a, b = _final_state(whole_dir), _final_state(killed_dir)
  unequal = sorted(
    name for name in a.keys() | b.keys() if not np.array_equal(a.get(name), b.get(name))
  )
  losses_a = [r["train_loss"] for r in _train_records(whole_dir)]
  losses_b = [r["train_loss"] for r in _train_records(killed_dir)]
  with open(os.path.join(whole_dir, "results.json")) as f:
    whole_results = json.load(f)
  with open(os.path.join(killed_dir, "results.json")) as f:
    killed_results = json.load(f)
  report_lib.emit(
    {
      "command": _command("WORKDIR"),
      "num_steps": NUM_STEPS.value,
      "checkpoint_every": CHECKPOINT_EVERY.value,
      "seed": SEED.value,
      "kills_requested": KILLS.value,
      "kills": kills,
      "wall": wall,
      "train_seconds": {
        "uninterrupted": whole_results["train_seconds"],
        "killed": killed_results["train_seconds"],
      },
      "final_loss": {
        "uninterrupted": whole_results["final_loss"],
        "killed": killed_results["final_loss"],
      },
      "variables_compared": len(a),
      "variables_unequal": unequal,
      "final_state_equal": not unequal and a.keys() == b.keys(),
      "train_losses_equal": losses_a == losses_b,
      "train_records": len(losses_a),
      "memory_uninterrupted": _memory(_train_records(whole_dir)),
    },
    OUT.value,
  )


if __name__ == "__main__":
  app.run(main)
