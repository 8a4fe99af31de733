"""The meta-trainer: compiled meta-steps, checkpoints that resume the exact run, logs.

A run lives in its workdir:
  checkpoints/     tf.train.CheckpointManager: weights, optimiser state, step, seconds
  log.jsonl        one JSON line per logging step (its metrics, train_seconds so far and
                   rss_mib, the process's resident memory) and per validation
  tensorboard/     the same scalars for TensorBoard
  results.json     written at the end: num_steps, train_seconds, final_loss, ...
Resuming restores the step, the weights and the optimiser, and restarts the data
stream at the restored step (meta-batch s is always episodes sT..sT+T-1), so an
interrupted run ends where an uninterrupted one of the same length would.
"""

import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from mann import errors
from mann import files
from mann.data import pipeline
from mann.meta import learner as learner_lib
from mann.training import distribute

CHECKPOINT_FOLDER = "checkpoints"
LOG_FILE = "log.jsonl"
RESULTS_FILE = "results.json"


class _Progress:
  """One line per report: step, percent, rate, ETA, and the latest metrics."""

  def __init__(self, first_step: int, num_steps: int, stream=sys.stderr):
    self._first_step = first_step
    self._num_steps = num_steps
    self._start = time.perf_counter()
    self._stream = stream

  def report(self, step: int, values: dict) -> None:
    done = step - self._first_step
    elapsed = time.perf_counter() - self._start
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (self._num_steps - step) / rate if rate > 0 else float("nan")
    shown = " ".join(f"{k} {'n/a' if v is None else f'{v:.4g}'}" for k, v in values.items())
    self._stream.write(f"step {step}/{self._num_steps} ({100.0 * step / self._num_steps:.1f}%)"
                       f" {rate:.2f} steps/s ETA {_duration(eta)} | {shown}\n")
    self._stream.flush()


class _StopRequest:
  """Set by SIGTERM or Ctrl-C; the loop checks it between steps, so that the checkpoint
  it then saves holds a step count that matches its weights. A second Ctrl-C stops at
  once (without a checkpoint)."""

  def __init__(self):
    self.requested = False

  def handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True


@contextlib.contextmanager
def _stop_requests():
  """Routes SIGTERM and Ctrl-C to a _StopRequest while training. (A background run
  started from a script ignores Ctrl-C; `kill PID` sends SIGTERM.)"""
  request = _StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield request
    return
  previous = {}
  for signum in (signal.SIGTERM, signal.SIGINT):
    if signal.getsignal(signum) is not signal.SIG_IGN:
      previous[signum] = signal.signal(signum, request.handle)
  try:
    yield request
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def _resident_mib() -> Optional[float]:
  """This process's resident memory now, MiB (None where /proc is not there)."""
  try:
    with open("/proc/self/statm") as f:
      pages = int(f.read().split()[1])
  except (OSError, ValueError, IndexError):
    return None
  return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _read_log_line(line: str) -> Optional[dict]:
  """A log record, or None for a line torn by a crash mid-write (the file's last)."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError:
    return None
  return record if isinstance(record, dict) and "step" in record else None


def _truncate_log(path: str, last_step: int) -> None:
  """Drops log lines past `last_step` (they belong to steps the resumed run redoes) and
  any torn line."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [l if l.endswith("\n") else l + "\n" for l in f
             if (record := _read_log_line(l)) is not None and record["step"] <= last_step]
  with files.atomic_write(path) as tmp_path, open(tmp_path, "w") as f:
    f.writelines(lines)


def restore_latest(workdir: str, learner: learner_lib.MetaLearner) -> int:
  """Loads the learner's weights from the run's latest checkpoint; returns its step.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
  """
  folder = os.path.join(workdir, CHECKPOINT_FOLDER)
  latest = tf.train.latest_checkpoint(folder)
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {folder}")
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  tf.train.Checkpoint(step=step, **learner.checkpoint_items()).restore(
      latest).expect_partial().assert_existing_objects_matched()
  return int(step.numpy())


def train(*, learner: learner_lib.MetaLearner, optimizer: keras.optimizers.Optimizer,
          make_batches: Callable[[int, pipeline.Shard], tf.data.Dataset], num_steps: int,
          workdir: str,
          log_every: int = 100, checkpoint_every: int = 1000,
          validate: Optional[Callable[[], dict]] = None, validate_every: int = 1000,
          steps_per_call: int = 1, jit_compile: bool = False,
          strategy: Optional[tf.distribute.Strategy] = None,
          clip_grad_norm: Optional[float] = None, skip_nonfinite: bool = False,
          progress_stream=sys.stderr, run_facts: Optional[dict] = None) -> dict:
  """Meta-trains `learner` for num_steps meta-steps, resuming from workdir if it can.

  Args:
    learner: any MetaLearner (mann.meta.learner): its trainable_variables,
      checkpoint_items() and compute_gradients(meta_batch, step) are used.
    optimizer: the outer optimiser (Adam in the MAML paper).
    make_batches: (start_step, shard) -> dataset of meta-batches from that step on, the
      shard's slices of each (mann.data.meta_batches(..., shard=shard)); with one
      replica, shard is data.ONE_REPLICA: whole meta-batches.
    num_steps: total meta-steps of the run (not of this call).
    workdir: where checkpoints, logs and results go (created if needed).
    log_every: meta-steps between log lines.
    checkpoint_every: meta-steps between checkpoints (one is always written at the end).
    validate: optional () -> {name: float}, run every validate_every steps and at the end.
    validate_every: meta-steps between validations.
    steps_per_call: meta-steps run inside one compiled call (a tf.while_loop), which
      saves the per-step Python round trip where steps are tiny (sinusoid); the
      steps are the same ones, so results do not depend on it beyond round-off
      (oneDNN may fuse ops differently inside the loop).
    jit_compile: compile each meta-step (gradients and update) with XLA, as GPUs and
      TPUs want it; the same steps up to rounding.
    strategy: the tf.distribute strategy the steps run under (default: the current
      one, tf.distribute.get_strategy()). The learner's variables must have been made
      under its scope. R replicas each take T/R tasks of every meta-batch; the update
      is the one-replica update up to round-off (the replicas' mean meta-gradients are
      averaged before clipping, the finiteness check and the optimiser). In a cluster
      only the chief writes log.jsonl, results.json and TensorBoard; the other workers
      write their checkpoints to workdir/workers/<task id> (every worker must save).
    clip_grad_norm: clip the meta-gradients to this global norm (None: no clipping).
    skip_nonfinite: a meta-step whose loss or meta-gradient is not finite is skipped
      (no update; counted in log.jsonl as nonfinite_skipped and in results.json);
      False: the run stops there with errors.RunDiverged, its update not applied and
      no checkpoint written after it.
    progress_stream: where the progress lines go.
    run_facts: more entries for results.json (e.g. the model's parameter count).

  Returns:
    The results dict also written to workdir/results.json.

  Raises:
    errors.RunDiverged: a non-finite meta-step, without skip_nonfinite.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.is_chief(strategy)
  if not chief:  # every worker takes part in a save; only the chief's is the run's
    workdir = os.path.join(workdir, "workers", str(strategy.cluster_resolver.task_id))
  os.makedirs(workdir, exist_ok=True)
  variables = learner.trainable_variables
  with strategy.scope():
    optimizer.build(variables)
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    skipped_total = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_skipped")
  items = dict(step=step_counter, train_seconds=seconds, optimizer=optimizer,
               **learner.checkpoint_items())
  checkpoint = tf.train.Checkpoint(nonfinite_skipped=skipped_total, **items)
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, CHECKPOINT_FOLDER),
                                       max_to_keep=3)
  if manager.latest_checkpoint:
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(manager.latest_checkpoint)}
    # Checkpoints written before the skip counter existed hold everything else.
    restored = checkpoint if "nonfinite_skipped" in saved else tf.train.Checkpoint(**items)
    restored.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("resumed from %s at step %d", manager.latest_checkpoint,
                 int(step_counter.numpy()))
  first_step = int(step_counter.numpy())
  log_path = os.path.join(workdir, LOG_FILE)
  _truncate_log(log_path, first_step)
  writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief
            else tf.summary.create_noop_writer())

  def gradients_step(meta_batch, step):
    """A replica's part of a meta-step: (the meta-batch's meta-gradients, clipped;
    metrics; 1.0 if a loss or meta-gradient on any replica was non-finite else 0.0).
    Every replica returns the same gradients and flag."""
    meta_batch = tf.nest.map_structure(lambda x, spec: tf.ensure_shape(x, spec.shape),
                                       meta_batch, replica_spec[0])
    gradients, metrics = learner.compute_gradients(meta_batch, step)
    context = tf.distribute.get_replica_context()
    if context.num_replicas_in_sync > 1:  # each replica's gradient: the mean of its T/R
      gradients = context.all_reduce(tf.distribute.ReduceOp.MEAN, gradients)
    if clip_grad_norm:
      gradients, _ = tf.clip_by_global_norm(gradients, clip_grad_norm)
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients]
                           + [tf.reduce_all(tf.math.is_finite(metrics["loss"]))])
    nonfinite = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                   1.0 - tf.cast(finite, tf.float32))
    return gradients, metrics, tf.minimum(nonfinite, 1.0)

  def apply_step(gradients):
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    # Keras sums the replicas' gradients: 1/R of the mean from each sums to the mean.
    optimizer.apply([g / replicas for g in gradients] if replicas > 1 else gradients,
                    variables)
    return tf.constant(True)

  def meta_step(meta_batch, step):
    """One meta-step on one replica; a non-finite one skips its update."""
    gradients, metrics, nonfinite = gradients_step(meta_batch, step)
    tf.cond(nonfinite == 0, lambda: apply_step(gradients), lambda: tf.constant(False))
    return metrics, nonfinite

  compile_step = (lambda f: tf.function(f, jit_compile=True)) if jit_compile else (lambda f: f)
  step_function, gradients_function, apply_function = map(
      compile_step, (meta_step, gradients_step, apply_step))
  mean = lambda v: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)

  def replicated_step(meta_batch, step):
    if strategy.num_replicas_in_sync == 1:
      metrics, nonfinite = strategy.run(step_function, args=(meta_batch, step))
    else:
      # An update inside control flow in a replica cannot synchronise the replicas
      # (tf.distribute refuses it), so the skip decision is taken across them.
      gradients, metrics, nonfinite = strategy.run(gradients_function,
                                                   args=(meta_batch, step))
      tf.cond(mean(nonfinite) == 0,
              lambda: strategy.experimental_local_results(
                  strategy.run(apply_function, args=(gradients,)))[0],
              lambda: tf.constant(False))
    return {k: mean(v) for k, v in metrics.items()}, mean(nonfinite)

  def finite_part(metrics, nonfinite):
    """A non-finite step's metrics count as zeros: means are over the finite steps."""
    return {k: tf.where(nonfinite > 0, tf.zeros_like(v), v) for k, v in metrics.items()}

  @tf.function
  def run_steps(iterator, start, count):
    """`count` meta-steps from `start` (fewer: stopped at a non-finite one, without
    skip_nonfinite). Returns the mean of each metric over the finite steps, the
    number of non-finite steps, and the 0-based index of the first (-1: none)."""
    metrics, nonfinite = replicated_step(next(iterator), start)
    totals = finite_part(metrics, nonfinite)
    bad_steps = nonfinite
    first_bad = tf.where(nonfinite > 0, start, tf.constant(-1, tf.int64))
    steps_run = tf.constant(1, tf.int64)
    if steps_per_call > 1:  # one step outside the loop fixes the metrics' structure
      for offset in tf.range(tf.constant(1, tf.int64), count):
        if not skip_nonfinite and bad_steps > 0:
          break
        metrics, nonfinite = replicated_step(next(iterator), start + offset)
        totals = tf.nest.map_structure(tf.add, totals, finite_part(metrics, nonfinite))
        first_bad = tf.where((first_bad < 0) & (nonfinite > 0), start + offset, first_bad)
        bad_steps += nonfinite
        steps_run += 1
    finite_steps = tf.maximum(tf.cast(steps_run, tf.float32) - bad_steps, 1.0)
    return ({k: v / tf.cast(finite_steps, v.dtype) for k, v in totals.items()},
            bad_steps, first_bad)

  def steps_to_boundary(step):
    """Steps until the next log, validation, checkpoint or end, at most steps_per_call."""
    boundaries = [log_every, checkpoint_every] + ([validate_every] if validate else [])
    until = min([every - step % every for every in boundaries] + [num_steps - step])
    return min(until, steps_per_call)

  def write_log(record: dict) -> None:
    if not chief:
      return
    with open(log_path, "a") as f:
      f.write(json.dumps(files.json_safe(record)) + "\n")
    with writer.as_default(step=record["step"]):
      for name, value in record.items():
        if name != "step" and isinstance(value, float):
          tf.summary.scalar(name, value)
    writer.flush()

  progress = _Progress(first_step, num_steps, progress_stream)
  window: dict[str, list[float]] = {}
  skipped_in_window = 0
  last_train_record: dict = {}
  last_validation: dict = {}
  clock = time.perf_counter()
  step = first_step

  def replica_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
    local = context.num_replicas_in_sync // context.num_input_pipelines
    dataset = make_batches(first_step, pipeline.Shard(
        first_replica=context.input_pipeline_id * local, num_local_replicas=local,
        num_replicas=context.num_replicas_in_sync))
    replica_spec.append(dataset.element_spec)
    return dataset

  replica_spec = []  # a replica's meta-batch, static shapes (a cluster's loses them)

  batches = (iter(strategy.distribute_datasets_from_function(replica_batches))
             if first_step < num_steps else None)
  trace_seconds = None
  with _stop_requests() as stop:
    while step < num_steps:
      if stop.requested:
        seconds.assign_add(time.perf_counter() - clock)
        manager.save(checkpoint_number=step)
        progress_stream.write(f"stopped: checkpoint saved at step {step}; rerun the same "
                              f"command to resume\n")
        raise KeyboardInterrupt
      started = time.perf_counter()
      count = steps_to_boundary(step)
      metrics, bad_steps, first_bad = run_steps(
          batches, tf.constant(step, tf.int64), tf.constant(count, tf.int64))
      bad_steps = int(bad_steps)  # waits for the steps
      if bad_steps and not skip_nonfinite:
        kept = manager.latest_checkpoint
        raise errors.RunDiverged(
            f"meta-step {int(first_bad) + 1} gave a non-finite loss or meta-gradient; "
            f"stopped without applying it, checkpoints kept as they were (latest: "
            f"{os.path.basename(kept) if kept else 'none'}); lower --outer_lr or "
            f"--inner_lr, set --clip_grad_norm, or pass --skip_nonfinite to skip such steps")
      skipped_total.assign_add(bad_steps)
      skipped_in_window += bad_steps
      for name, value in metrics.items():
        # A mean over the call's finite steps counts once for each of them.
        window.setdefault(name, []).extend([float(value)] * (count - bad_steps))
      if trace_seconds is None:
        trace_seconds = time.perf_counter() - started
        logging.info("first call of %d meta-step(s) (trace + run): %.1f s", count,
                     trace_seconds)
      step += count
      step_counter.assign(step)
      if step % log_every == 0 or step == num_steps:
        now = time.perf_counter()
        seconds.assign_add(now - clock)
        clock = now
        last_train_record = {"step": step, "train_seconds": float(seconds.numpy()),
                             **{f"train_{k}": float(np.mean(v)) if v else None
                                for k, v in window.items()}}
        if skip_nonfinite:
          last_train_record["nonfinite_skipped"] = skipped_in_window
        last_train_record["rss_mib"] = _resident_mib()
        window, skipped_in_window = {}, 0
        write_log(last_train_record)
        progress.report(step, {k: v for k, v in last_train_record.items()
                               if k.startswith("train_") and k != "train_seconds"})
      if validate is not None and (step % validate_every == 0 or step == num_steps):
        last_validation = {f"validation_{k}": float(v) for k, v in validate().items()}
        write_log({"step": step, **last_validation})
        progress.report(step, last_validation)
        clock = time.perf_counter()  # validation time is not training time
      if step % checkpoint_every == 0 or step == num_steps:
        seconds.assign_add(time.perf_counter() - clock)
        clock = time.perf_counter()
        manager.save(checkpoint_number=step)

  if not last_train_record and os.path.exists(log_path):  # resumed at the end already
    with open(log_path) as f:
      records = [r for r in map(_read_log_line, f) if r is not None]
    last_train_record = next((r for r in reversed(records) if "train_loss" in r), {})
    last_validation = next((r for r in reversed(records)
                            if any(k.startswith("validation_") for k in r)), {})
    last_validation = {k: v for k, v in last_validation.items() if k != "step"}
  results = {
      "num_steps": num_steps,
      "train_seconds": float(seconds.numpy()),
      "final_loss": last_train_record.get("train_loss"),
      **{f"final_{k}": v for k, v in last_train_record.items()
         if k.startswith("train_") and k not in ("train_loss", "train_seconds")},
      **last_validation,
      "first_step_seconds_this_call": trace_seconds,
      **({"nonfinite_skipped": int(skipped_total.numpy())} if skip_nonfinite else {}),
      **(run_facts or {}),
  }
  if chief:
    files.write_json(os.path.join(workdir, RESULTS_FILE), results)
  return results
