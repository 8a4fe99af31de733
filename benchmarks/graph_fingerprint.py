r"""The traced conv4 MAML meta-gradient's ops, counted, and a hash of them: whether a code
change leaves the step's graph as it was (a step with the same ops runs the same
kernels, so its time cannot differ beyond the machine's spread).

  python -m benchmarks.graph_fingerprint --precision=mixed_bfloat16 --out=FILE.json

Run it at two commits (each from its own checkout) and compare the hashes. For each of
second and first order, with and without the shared first step: the number of ops, the
convolution ops by type and dtype, and a hash of every (op type, dtype) count. The
grouped convolutions' forms (mann.models.grouped_convolution) are reported too; where
a commit lacks that module, null.
"""

import collections
import hashlib
import json

from absl import app
from absl import flags

from benchmarks import inputs
from benchmarks import report as report_lib

PRECISION = flags.DEFINE_enum(
  "precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"], "Keras dtype policy of conv4."
)
SETTING = flags.DEFINE_list(
  "setting", ["5", "1", "15", "4"], "ways, shots, queries per class, meta-batch size."
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def _dtype_of(op) -> str:
  if "T" not in op.node_def.attr:
    return ""
  value = op.get_attr("T")
  return value.name if hasattr(value, "name") else str(value)


def fingerprint(graph) -> dict:
  """{ops, convolutions: {type:dtype: count}, sha256 (first 16 hex digits)} of a graph."""
  counts: collections.Counter[str] = collections.Counter(
    f"{op.type}:{_dtype_of(op)}" for op in graph.get_operations()
  )
  digest = hashlib.sha256(json.dumps(sorted(counts.items())).encode()).hexdigest()
  return {
    "ops": sum(counts.values()),
    "convolutions": {k: v for k, v in sorted(counts.items()) if k.startswith("Conv2D")},
    "sha256": digest[:16],
  }


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import models  # pylint: disable=g-import-not-at-top

  ways, shots, queries, tasks = (int(v) for v in SETTING.value)
  keras.utils.set_random_seed(0)
  keras.config.set_dtype_policy(PRECISION.value)
  model = models.conv4(num_classes=ways)
  batch = inputs.random_meta_batch(ways, shots, queries, tasks)
  rows = {}
  for shared in (False, True):
    for first_order in (False, True):
      learner = meta.MAML(
        model,
        objective=meta.CLASSIFICATION,
        num_inner_steps=1,
        inner_lr=0.4,
        first_order=first_order,
        shared_first_step=shared,
      )
      graph = (
        tf.function(lambda b, learner=learner: learner.compute_gradients(b, 0))
        .get_concrete_function(batch)
        .graph
      )
      order = "first" if first_order else "second"
      rows[f"{order}{'+shared' if shared else ''}"] = fingerprint(graph)
  try:
    from mann.models import grouped_convolution  # pylint: disable=g-import-not-at-top

    forms = grouped_convolution.paths_chosen()
  except ImportError:
    forms = None
  report_lib.emit(
    {
      "benchmark": "graph_fingerprint",
      "precision": PRECISION.value,
      "setting": SETTING.value,
      "grouped_convolution": forms,
      "rows": rows,
    },
    OUT.value,
  )


if __name__ == "__main__":
  app.run(main)
