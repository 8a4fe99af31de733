r"""Episodes per second of the Omniglot meta-batch pipeline, against the step that eats them.

  python -m benchmarks.pipeline_throughput --omniglot_dir=../shared/data/omniglot

Measures, in one process, one after the other:
  1. the pipeline alone: meta-batches of T episodes (5-way 1-shot, 15 queries per
     class, T=32 by default) drawn from the 4400 rotated training classes;
  2. a compiled conv4 forward+backward+Adam step over one meta-batch's images
     (T * N * (K + Q) images): about the work of a first-order MAML meta-step on
     that batch (the inner step sees the support images, the outer loss the query
     ones); a second-order step costs more, so the ratio below is conservative;
  3. that step fed by the pipeline, against the same step on one fixed batch: the
     slowdown the data adds when both share the CPU.
Prints one JSON object (and writes it to --out); `pipeline_to_step_ratio` is how many
meta-batches the pipeline makes in the time one step takes (the target is >= 10).
"""

import statistics
import time

from absl import flags
import keras
import tensorflow as tf

from benchmarks import report as report_lib
from experiments import common
from experiments import data_flags
from mann import data
from mann import models

META_BATCH_SIZE = flags.DEFINE_integer("meta_batch_size", 32, "T: episodes per meta-batch.")
NUM_BATCHES = flags.DEFINE_integer("num_batches", 200, "Meta-batches timed for the pipeline.")
NUM_STEPS = flags.DEFINE_integer("num_steps", 10, "Steps timed for the training step.")
OUT = flags.DEFINE_string("out", None, "Also write the JSON to this file.")


def _time_pipeline(dataset, num_batches):
  iterator = iter(dataset)
  next(iterator)  # first batch: tracing and buffer fill, not counted
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return time.perf_counter() - start


def main(argv):
  del argv
  splits = data_flags.class_splits()
  sampler = data_flags.make_sampler(splits, split="train", seed=0)
  meta_batch_size = META_BATCH_SIZE.value
  dataset = data.meta_batches(sampler, meta_batch_size=meta_batch_size)

  pipeline_seconds = _time_pipeline(dataset, NUM_BATCHES.value)
  batches_per_second = NUM_BATCHES.value / pipeline_seconds

  model = models.conv4(num_classes=sampler.num_ways, image_shape=sampler.source.image_shape)
  optimizer = keras.optimizers.Adam(1e-3)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(batch):
    images = tf.concat([batch.support_x, batch.query_x], axis=1)
    labels = tf.concat([batch.support_y, batch.query_y], axis=1)
    images = tf.reshape(images, [-1, *sampler.source.image_shape])
    with tf.GradientTape() as tape:
      loss = loss_fn(tf.reshape(labels, [-1]), model(images, training=True))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss

  fixed = next(iter(dataset))
  start = time.perf_counter()
  float(step(fixed))
  trace_seconds = time.perf_counter() - start

  def timed_steps(batches):
    times = []
    for batch in batches:
      start = time.perf_counter()
      float(step(batch))  # float(): wait for the step to finish
      times.append(time.perf_counter() - start)
    return times

  fixed_times = timed_steps([fixed] * NUM_STEPS.value)
  fed = iter(dataset)
  next(fed)
  fed_times = timed_steps(next(fed) for _ in range(NUM_STEPS.value))
  step_seconds = statistics.median(fixed_times)
  images_per_batch = meta_batch_size * sampler.num_ways * (sampler.num_shots + sampler.num_queries)
  report_lib.emit(
    {
      "benchmark": "pipeline_throughput",
      "dataset": data_flags.DATASET.value,
      "num_ways": sampler.num_ways,
      "num_shots": sampler.num_shots,
      "num_queries": sampler.num_queries,
      "meta_batch_size": meta_batch_size,
      "train_classes": sampler.source.num_classes,
      "images_per_meta_batch": images_per_batch,
      "pipeline_meta_batches_per_second": round(batches_per_second, 2),
      "pipeline_episodes_per_second": round(batches_per_second * meta_batch_size, 1),
      "conv4_step_seconds_fixed_batch_median": round(step_seconds, 4),
      "conv4_step_seconds_fed_by_pipeline_median": round(statistics.median(fed_times), 4),
      "conv4_step_trace_seconds": round(trace_seconds, 2),
      "pipeline_to_step_ratio": round(batches_per_second * step_seconds, 1),
    },
    OUT.value,
  )


if __name__ == "__main__":
  common.run(main)
