r"""One ordinary convolution, its input and its filter gradient, in float32 and bfloat16,
with the kernels TensorFlow picks in this process:

  python -m benchmarks.ordinary_conv_dtypes --out=FILE.json
  TF_ENABLE_ONEDNN_OPTS=0 python -m benchmarks.ordinary_conv_dtypes --out=FILE.json

With TF_ENABLE_ONEDNN_OPTS=0 every op runs TF's Eigen kernels, the kernels that run
bfloat16 on a CPU without oneDNN's bfloat16 path (an AVX2-only CPU): what Keras's own
bfloat16 convolutions cost there (a per-task mapping, the MANN's encoder), and why the
task-batched engine runs its 16-bit convolutions in float32 on such a CPU
(mann.models.grouped_convolution). Medians of --repeats calls, the dtypes in turns.
"""

import os
import statistics
import time

from absl import app
from absl import flags

from benchmarks import report as report_lib

SHAPE = flags.DEFINE_list(
  "shape",
  ["300", "14", "14", "64"],
  "Images, height, width, channels (conv4's second layer over 4 tasks of 75 images).",
)
FILTERS = flags.DEFINE_integer("filters", 64, "Output channels of the 3x3 convolution.")
REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per dtype.", lower_bound=1)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  images, height, width, channels = (int(v) for v in SHAPE.value)
  x = tf.random.stateless_normal([images, height, width, channels], seed=[0, 1])
  kernel = tf.random.stateless_normal([3, 3, channels, FILTERS.value], seed=[0, 2])
  steps = {}
  for dtype in (tf.float32, tf.bfloat16):
    x_, kernel_ = tf.cast(x, dtype), tf.cast(kernel, dtype)

    @tf.function
    def step(x_=x_, kernel_=kernel_):
      with tf.GradientTape() as tape:
        tape.watch([x_, kernel_])
        y = tf.nn.conv2d(x_, kernel_, 1, "SAME")
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
      return tape.gradient(loss, [x_, kernel_])

    step()  # trace and warm up
    steps[dtype.name] = step
  seconds: dict[str, list[float]] = {name: [] for name in steps}
  for _ in range(REPEATS.value):
    for name, step in steps.items():
      start = time.perf_counter()
      [g.numpy() for g in step()]
      seconds[name].append(time.perf_counter() - start)
  medians = {name: statistics.median(values) for name, values in seconds.items()}
  report_lib.emit(
    {
      "benchmark": "ordinary_conv_dtypes",
      "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
      "shape": [images, height, width, channels],
      "filters": FILTERS.value,
      "repeats": REPEATS.value,
      "seconds_forward_and_gradients": medians,
      "bfloat16_over_float32": medians["bfloat16"] / medians["float32"],
    },
    OUT.value,
  )


if __name__ == "__main__":
  app.run(main)
