r"""Meta-trains a model on few-shot tasks; rerun the same command to resume.

  python -m experiments.train --flagfile=experiments/configs/maml_omniglot_5w1s.flags \
      --omniglot_dir=../shared/data/omniglot --workdir=workdirs/maml_omniglot_5w1s

On several devices, through tf.distribute (the update equals the one-device update up
to float round-off; each replica takes meta_batch_size / R tasks of every meta-batch):

  python -m experiments.train ... --strategy=mirrored             # every local GPU
  python -m experiments.train ... --strategy=tpu --tpu=grpc://ADDRESS:8470
  TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
              "task": {"type": "worker", "index": 0}}' \
      python -m experiments.train ... --strategy=multi_worker   # one per machine
  python -m experiments.train ... --strategy=mirrored --num_cpu_devices=2   # CPU test

Writes to --workdir: flags.json (every setting of the run), checkpoints/, log.jsonl
(a JSON line per logging step and per validation), tensorboard/, results.json (at
the end: num_steps, train_seconds, final_loss, final metrics, last validation,
num_parameters of the model, and this call's start-up: the process's age at main(),
after the data and after the learner, and at the end of the first meta-step), and
.lock while it runs (a second trainer on the workdir is refused).
"""

import contextlib
import os

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from experiments import builders
from experiments import common
from experiments import data_flags
from experiments import run_flags
from experiments import run_folder
from mann import data
from mann import errors
from mann import evaluation
from mann import training
from mann.meta import task_chunks
from mann.training import distribute

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the run (created if missing).")
LOG_EVERY = flags.DEFINE_integer("log_every", 100, "Meta-steps between log lines.", lower_bound=1)
CHECKPOINT_EVERY = flags.DEFINE_integer(
  "checkpoint_every", 1000, "Meta-steps between checkpoints.", lower_bound=1
)
KEEP_CHECKPOINTS_AT = flags.DEFINE_list(
  "keep_checkpoints_at",
  [],
  "Meta-steps whose weights are kept for good in WORKDIR/kept_checkpoints, e.g. "
  "500,1000,2000,5000,10000, beside the latest checkpoints that resume the run; "
  "experiments.evaluate --kept_checkpoints scores each on the same tasks (accuracy "
  "against budget).",
)
JIT_COMPILE = flags.DEFINE_boolean(
  "jit_compile",
  False,
  "Compile each meta-step with XLA (for GPU and TPU; on this CPU the "
  "grouped convolutions of conv4 compile to a much slower step).",
)
VALIDATE_EVERY = flags.DEFINE_integer(
  "validate_every", 1000, "Meta-steps between validations.", lower_bound=1
)
NUM_VALIDATION_TASKS = flags.DEFINE_integer(
  "num_validation_tasks", 200, "Validation tasks per validation (0: none).", lower_bound=0
)
STEPS_PER_CALL = flags.DEFINE_integer(
  "steps_per_call",
  1,
  "Meta-steps per compiled call (e.g. 100 for sinusoid, whose steps "
  "are too small to pay a Python round trip each); results do not depend on it (beyond "
  "float32 round-off).",
  lower_bound=1,
)
TASKS_PER_CHUNK = flags.DEFINE_integer(
  "tasks_per_chunk",
  0,
  "maml, fomaml, reptile: compute a meta-step's meta-gradients this many tasks at a time "
  "(a divisor of --meta_batch_size per replica): the same gradients, with one chunk's "
  "activations in memory instead of the whole meta-batch's; smaller chunks, less memory "
  "and more time (results/performance/README.md). 0: all tasks at once.",
  lower_bound=0,
)
NUM_THREADS = flags.DEFINE_integer(
  "num_threads",
  0,
  "CPU threads for TensorFlow's ops (0: TensorFlow's choice, all cores).",
  lower_bound=0,
)
STRATEGY = flags.DEFINE_enum(
  "strategy",
  "default",
  list(distribute.STRATEGIES),
  "tf.distribute strategy: default (one device, TensorFlow's placement), one_device "
  "(the first GPU, else the CPU), mirrored (every local GPU, else every logical CPU "
  "device, see --num_cpu_devices), tpu (--tpu), multi_worker (the cluster in "
  "$TF_CONFIG; only the chief writes the run's files). A run resumes under any "
  "strategy and replica count.",
)
TPU = flags.DEFINE_string(
  "tpu", "", "--strategy=tpu: the TPU's name or grpc:// address ('': the local TPU)."
)
NUM_CPU_DEVICES = flags.DEFINE_integer(
  "num_cpu_devices",
  1,
  "Split the CPU into this many logical devices (for running and "
  "testing the mirrored and multi_worker strategies without accelerators).",
  lower_bound=1,
)
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  # Process ages (s) at the milestones of the start-up, for results.json: what the time to
  # the first step goes to (the trainer adds the end of the first call).
  startup = {"main": training.process_age_seconds()}
  run_flags.check_combination()
  keep_checkpoints_at = common.kept_steps(KEEP_CHECKPOINTS_AT.value)
  if run_flags.BATCH_NORM.value == "running":
    raise errors.UserInputError(
      "--batch_norm=running is for experiments.evaluate (fine-tuning a trained run); "
      "train with --batch_norm=transductive or per_step"
    )
  if NUM_CPU_DEVICES.value > 1:
    distribute.split_cpu(NUM_CPU_DEVICES.value)  # before anything initialises TensorFlow
  tf.config.experimental.enable_op_determinism()
  if NUM_THREADS.value:
    tf.config.threading.set_intra_op_parallelism_threads(NUM_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(NUM_THREADS.value)
  run_folder.check_run_flags(WORKDIR.value)  # before the slow data loading
  splits = data_flags.class_splits()
  startup["data_loaded"] = training.process_age_seconds()
  # The image transfer baseline pretrains on the training classes' own labels.
  pretrain = run_flags.ALGORITHM.value == "transfer" and splits is not None
  train_sampler = builders.make_sampler(splits, split="train", class_labels=pretrain)
  strategy = distribute.make_strategy(STRATEGY.value, tpu=TPU.value)
  distribute.check_meta_batch(run_flags.META_BATCH_SIZE.value, strategy)
  with strategy.scope():
    model = builders.make_model(train_sampler)
    learner = builders.make_learner(model, splits)
    optimizer = builders.make_optimizer()
  startup["learner_built"] = training.process_age_seconds()
  common.library_checks("--tasks_per_chunk")(task_chunks.check_tasks_per_chunk)(
    learner, run_flags.META_BATCH_SIZE.value // strategy.num_replicas_in_sync, TASKS_PER_CHUNK.value
  )
  validate = None
  if NUM_VALIDATION_TASKS.value:
    validation_sampler = builders.make_sampler(splits, split="validation")

    def validate():
      scores = evaluation.score_tasks(
        learner,
        validation_sampler,
        num_tasks=NUM_VALIDATION_TASKS.value,
        num_inner_steps=run_flags.NUM_EVAL_INNER_STEPS.value,
      )
      return evaluation.report_scalars(
        evaluation.report(scores, metric_name=learner.objective.metric_name)
      )

  run_facts = {}
  if run_flags.INIT_FROM.value and not training.has_checkpoint(WORKDIR.value):
    # A first start: the weights from the other run (a resumed run has its own).
    source_step = run_folder.init_model_from(run_flags.INIT_FROM.value, model)
    logging.info("model weights from %s (its step %d)", run_flags.INIT_FROM.value, source_step)
    run_facts["init_from"] = {"run": run_flags.INIT_FROM.value, "step": source_step}
  # Only now: a first start that fails on its data or flags writes nothing.
  chief = distribute.is_chief(strategy)
  with contextlib.ExitStack() as lock:
    if chief:  # held from before flags.json is written to the end of the run
      lock.enter_context(run_folder.hold_workdir(WORKDIR.value))
      run_folder.save_run_flags(WORKDIR.value)
    results = training.train(
      learner=learner,
      optimizer=optimizer,
      strategy=strategy,
      make_batches=lambda start, shard: data.meta_batches(
        train_sampler,
        meta_batch_size=run_flags.META_BATCH_SIZE.value,
        start_step=start,
        shard=shard,
      ),
      num_steps=run_flags.NUM_STEPS.value,
      workdir=WORKDIR.value,
      log_every=LOG_EVERY.value,
      checkpoint_every=CHECKPOINT_EVERY.value,
      keep_checkpoints_at=keep_checkpoints_at,
      jit_compile=JIT_COMPILE.value,
      validate=validate,
      validate_every=VALIDATE_EVERY.value,
      steps_per_call=STEPS_PER_CALL.value,
      tasks_per_chunk=TASKS_PER_CHUNK.value,
      clip_grad_norm=run_flags.CLIP_GRAD_NORM.value or None,
      skip_nonfinite=run_flags.SKIP_NONFINITE.value,
      max_skipped_fraction=run_flags.MAX_SKIPPED_FRACTION.value,
      # The model adapted and tested (not a transfer baseline's pretraining head).
      run_facts={
        "num_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "num_replicas": strategy.num_replicas_in_sync,
        "startup_process_age_seconds": startup,
        **run_facts,
      },
    )
  if chief:
    print(f"results: {os.path.join(WORKDIR.value, 'results.json')}: {results}")


if __name__ == "__main__":
  common.run(main)
