r"""Meta-steps per second of the MAML Omniglot 5w1s step on 1, 2 and 4 replicas.

  python -m benchmarks.replica_scaling --out=results/replica_scaling.json

Each device count runs in a fresh process: the CPU split into N logical devices
(--num_cpu_devices of experiments.train) under MirroredStrategy (N = 1: the default
strategy), conv4 MAML as experiments/configs/maml_omniglot_5w1s.flags sets it (64
filters, one second-order inner step at lr 0.4, Adam 1e-3, meta-batch 32), random
28x28 tasks (a step's cost does not depend on pixel values), through the trainer
itself (mann.training.train). Reported: the median seconds per step over --steps
timed steps (log.jsonl's train_seconds, one line per step, the first step left out),
the first call (trace + run), steps per second, and each count's time over the
one-device time. On a CPU the logical devices share the same cores, so this measures
what replication costs, not a speed-up; on several GPUs the same strategy splits the
meta-batch across them.
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

DEVICE_COUNTS = flags.DEFINE_list(
  "device_counts", ["1", "2", "4"], "Logical CPU devices (= replicas) per measurement."
)
STEPS = flags.DEFINE_integer(
  "steps", 10, "Timed meta-steps per count (after the first).", lower_bound=2
)
META_BATCH_SIZE = flags.DEFINE_integer("meta_batch_size", 32, "Tasks per meta-step.", lower_bound=1)
OUT = flags.DEFINE_string("out", None, "Where to write the JSON (also printed).")
SINGLE = flags.DEFINE_integer("single", 0, "Internal: time this device count here.")


def _time_here(num_devices: int, steps: int, meta_batch_size: int) -> dict:
  from mann.training import distribute  # pylint: disable=g-import-not-at-top

  distribute.split_cpu(num_devices)
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann import data  # pylint: disable=g-import-not-at-top
  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import models  # pylint: disable=g-import-not-at-top
  from mann import training  # pylint: disable=g-import-not-at-top
  from mann.data import episode as episode_lib  # pylint: disable=g-import-not-at-top

  class RandomTasks:
    """5-way 1-shot, 1 query per class, random 28x28 images (fixed per index)."""

    @property
    def element_spec(self):
      images = tf.TensorSpec([5, 28, 28, 1], tf.float32)
      labels = tf.TensorSpec([5], tf.int32)
      return episode_lib.Episode(images, labels, images, labels)

    def episode(self, index):
      seed = tf.stack([index, tf.constant(0, tf.int64)])
      labels = tf.range(5, dtype=tf.int32)
      return episode_lib.Episode(
        tf.random.stateless_uniform([5, 28, 28, 1], seed),
        labels,
        tf.random.stateless_uniform([5, 28, 28, 1], seed + 1),
        labels,
      )

  strategy = distribute.make_strategy("mirrored" if num_devices > 1 else "default")
  distribute.check_meta_batch(meta_batch_size, strategy)
  with strategy.scope():
    keras.utils.set_random_seed(0)
    learner = meta.MAML(
      models.conv4(num_classes=5), objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4
    )
    optimizer = training.FusedAdam(1e-3)  # the binaries' Adam (experiments/builders.py)
  sampler = RandomTasks()
  with tempfile.TemporaryDirectory() as workdir:
    results = training.train(
      learner=learner,
      optimizer=optimizer,
      strategy=strategy,
      make_batches=lambda start, shard: data.meta_batches(
        sampler, meta_batch_size=meta_batch_size, start_step=start, shard=shard
      ),
      num_steps=steps + 1,
      workdir=workdir,
      log_every=1,
      checkpoint_every=steps + 1,
      progress_stream=open(os.devnull, "w"),
    )
    with open(os.path.join(workdir, "log.jsonl")) as f:
      seconds = [json.loads(line)["train_seconds"] for line in f]
  per_step = [b - a for a, b in zip(seconds, seconds[1:])]
  median = statistics.median(per_step)
  return {
    "num_devices": num_devices,
    "replicas": strategy.num_replicas_in_sync,
    "seconds_per_step": median,
    "steps_per_second": 1.0 / median,
    "min": min(per_step),
    "max": max(per_step),
    "first_call_seconds": results["first_step_seconds_this_call"],
    "final_loss": results["final_loss"],
  }


def main(argv):
  del argv
  if SINGLE.value:
    print(json.dumps(_time_here(SINGLE.value, STEPS.value, META_BATCH_SIZE.value)))
    return
  runs = []
  for count in DEVICE_COUNTS.value:
    output = subprocess.run(
      [
        sys.executable,
        "-m",
        "benchmarks.replica_scaling",
        f"--single={int(count)}",
        f"--steps={STEPS.value}",
        f"--meta_batch_size={META_BATCH_SIZE.value}",
      ],
      check=True,
      capture_output=True,
      text=True,
      cwd=os.path.join(os.path.dirname(__file__), ".."),
    ).stdout
    runs.append(json.loads(output.strip().splitlines()[-1]))
    print(json.dumps(runs[-1]), file=sys.stderr)
  one = runs[0]["seconds_per_step"]
  for run in runs:
    run["time_over_first_count"] = run["seconds_per_step"] / one
  report = {
    "benchmark": "replica_scaling",
    "command": " ".join(["python3", "-m", "benchmarks.replica_scaling", *sys.argv[1:]]),
    "cpu_count": os.cpu_count(),
    "steps": STEPS.value,
    "meta_batch_size": META_BATCH_SIZE.value,
    "runs": runs,
  }
  report_lib.emit(report, OUT.value)


if __name__ == "__main__":
  app.run(main)
