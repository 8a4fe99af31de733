r"""conv4's grouped convolutions, kernel by kernel, in float32 and bfloat16.

  python -m benchmarks.conv_kernels --out=results/conv_kernels_amx.json
  python -m benchmarks.conv_kernels --ordinary --out=results/conv_kernels_amx_ordinary.json

What the MAML step's time is made of, where bfloat16 pays and where it does not: for
each conv4 layer of the 5w1s meta-step (28 -> 14 -> 7 -> 4 -> 2, 3x3, stride 2, 'same';
T tasks folded into channels as mann.models.task_batched runs them, B images a task),
the forward convolution, its input gradient and its filter gradient in float32 and in
bfloat16, all timed in turns (benchmarks/interleaved.py; medians of --repeats calls),
and each bfloat16 result's error against float32's on the same bfloat16-rounded inputs
(norm of the difference over the norm). `check_shapes` adds the shapes where the stride
exceeds the input's extent (conv4 over 8x8 images reaches a 1x1 input), where oneDNN's
AMX bfloat16 filter gradient was seen wrong (mann/models/convolutional.py). --ordinary
also times each kernel as one ordinary convolution of the same images and multiply-adds
(the tasks' images in the batch axis, one kernel): how far the grouped kernels are from
what oneDNN does for an ordinary convolution of that size.
"""

from absl import app
from absl import flags

from benchmarks import convolution_kernels
from benchmarks import report as report_lib

NUM_TASKS = flags.DEFINE_integer("num_tasks", 32, "T, tasks folded into the channels.")
BATCHES = flags.DEFINE_list(
  "batches", ["5", "75"], "B, images a task: 5 (5w1s support, or 1 query a class), 75 (15)."
)
REPEATS = flags.DEFINE_integer("repeats", 15, "Timed calls of each kernel.", lower_bound=2)
ORDINARY = flags.DEFINE_boolean(
  "ordinary",
  False,
  "Also time each kernel as one ordinary convolution of the same images and "
  "multiply-adds (the T tasks' images in the batch axis, one task's kernel): what the "
  "grouping itself costs.",
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def main(argv):
  del argv
  import sys  # pylint: disable=g-import-not-at-top

  reason = convolution_kernels.missing_kernels()
  if reason:
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(2)
  report = {
    "benchmark": "conv_kernels",
    "command": "python3 -m benchmarks.conv_kernels "
    + f"--num_tasks={NUM_TASKS.value} --batches={','.join(BATCHES.value)} "
    + f"--repeats={REPEATS.value} --ordinary={ORDINARY.value}",
    "layers": [
      convolution_kernels.measure_layer(
        int(batch), extent, channels, NUM_TASKS.value, 2, REPEATS.value, ORDINARY.value
      )
      for batch in BATCHES.value
      for extent, channels in convolution_kernels.CONV4_LAYERS
    ],
    "filter_gradient_checks": [
      convolution_kernels.check_filter_gradient(*shape)
      for shape in convolution_kernels.CHECK_SHAPES
    ],
  }
  report_lib.emit(report, OUT.value)


if __name__ == "__main__":
  app.run(main)
