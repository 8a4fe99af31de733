r"""What mixed_bfloat16 does to the meta-gradient: conv4 MAML's meta-gradient on one
Omniglot meta-batch in mixed_bfloat16 against float32, from the same weights.

  python -m benchmarks.precision --omniglot_dir=../shared/data/omniglot \
      --out=results/precision/meta_gradient.json

For each setting (queries per class, inner steps, first or second order), from a fresh
seeded initialisation and, with --workdir, from that run's trained one: the relative
error ||g_bf16 - g_32|| / ||g_32|| and the cosine between them over every weight but the
conv biases (each is followed by batch norm, so its true gradient is 0 and both
precisions give only round-off), and the two meta-losses.
"""

from absl import app
from absl import flags
import keras
import numpy as np

from benchmarks import report as report_lib
from experiments import data_flags
from mann import data
from mann import meta
from mann import models
from mann import training
from mann.data import datasets

SETTINGS = flags.DEFINE_list(
  "settings",
  ["1:0:second", "1:1:first", "1:1:second", "1:5:second", "15:1:second"],
  "queries:inner_steps:first|second order.",
)
META_BATCH_SIZE = flags.DEFINE_integer("meta_batch_size", 8, "Tasks in the meta-batch.")
WORKDIR = flags.DEFINE_string(
  "workdir", None, "A conv4 MAML run (5-way, 28x28) whose trained weights are a second start."
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def _meta_gradient(policy, batch, *, inner_steps, first_order, workdir):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)  # the model's layers keep it
  try:
    return _seeded_meta_gradient(batch, inner_steps, first_order, workdir)
  finally:
    keras.config.set_dtype_policy(previous)


def _seeded_meta_gradient(batch, inner_steps, first_order, workdir):
  keras.utils.set_random_seed(0)
  model = models.conv4(num_classes=5)
  learner = meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    num_inner_steps=inner_steps,
    inner_lr=0.4,
    first_order=first_order,
  )
  if workdir:
    training.restore_latest(workdir, learner)
  gradients, metrics = learner.compute_gradients(batch)
  keep = [not v.path.endswith("conv/bias") for v in model.trainable_variables]
  flat = np.concatenate([g.numpy().ravel() for g, k in zip(gradients, keep) if k])
  return flat, float(metrics["loss"])


def main(argv):
  del argv
  splits = data_flags.class_splits()
  rows = []
  for setting in SETTINGS.value:
    queries, inner_steps, order = setting.split(":")
    sampler = datasets.make_sampler(
      "omniglot",
      split="train",
      num_ways=5,
      num_shots=1,
      num_queries=int(queries),
      seed=0,
      splits=splits,
    )
    batch = next(iter(data.meta_batches(sampler, meta_batch_size=META_BATCH_SIZE.value)))
    for start, workdir in [("fresh", None)] + (
      [("trained", WORKDIR.value)] if WORKDIR.value else []
    ):
      options = dict(inner_steps=int(inner_steps), first_order=order == "first", workdir=workdir)
      full, full_loss = _meta_gradient("float32", batch, **options)
      mixed, mixed_loss = _meta_gradient("mixed_bfloat16", batch, **options)
      rows.append(
        {
          "queries": int(queries),
          "inner_steps": int(inner_steps),
          "order": order,
          "start": start,
          "relative_error": float(np.linalg.norm(mixed - full) / np.linalg.norm(full)),
          "cosine": float(mixed @ full / np.linalg.norm(mixed) / np.linalg.norm(full)),
          "float32_meta_loss": full_loss,
          "mixed_bfloat16_meta_loss": mixed_loss,
        }
      )
      print(rows[-1], flush=True)
  report_lib.emit(
    {
      "model": "conv4 (64 filters), 5-way 1-shot Omniglot, inner_lr 0.4",
      "meta_batch_size": META_BATCH_SIZE.value,
      "workdir": WORKDIR.value,
      "rows": rows,
    },
    OUT.value,
  )


if __name__ == "__main__":
  app.run(main)
