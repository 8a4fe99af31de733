"""The meta-trainer's step loop: compiled meta-steps, checkpoints that resume the exact
run, logs, progress.

A run lives in its workdir:
  checkpoints/     tf.train.CheckpointManager: weights, optimiser state, step, seconds
  kept_checkpoints/  the weights, step and seconds at each of keep_checkpoints_at
  log.jsonl        one JSON line per logging step (its metrics, train_seconds so far and
                   rss_mib, the process's resident memory) and per validation
  tensorboard/     the same scalars for TensorBoard
  results.json     written at the end: num_steps, train_seconds, final_loss, ...,
                   the grouped convolutions' form and the machine
Resuming restores the step, the weights and the optimiser, and restarts the data
stream at the restored step (meta-batch s is always episodes sT..sT+T-1), so an
interrupted run ends where an uninterrupted one of the same length would.

Its parts: steps.py (the compiled meta-steps and their input), checkpointing.py,
run_log.py (log.jsonl and TensorBoard), and here the clock, the metric window, the
progress line and the stop request that the loop in train() ties together.
"""

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from mann import errors
from mann import files
from mann import machine
from mann.data import pipeline
from mann.meta import learner as learner_lib
from mann.models import grouped_convolution
from mann.training import checkpointing
from mann.training import distribute
from mann.training import run_log
from mann.training import steps as steps_lib
from mann.training import workdir_lock

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
    self._stream.write(
      f"step {step}/{self._num_steps} ({100.0 * step / self._num_steps:.1f}%)"
      f" {rate:.2f} steps/s ETA {_duration(eta)} | {shown}\n"
    )
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


def process_age_seconds() -> Optional[float]:
  """Seconds since this process started, from /proc (10 ms resolution; None where /proc
  is not there): the start-up of a binary, imports included, which no clock started in
  Python can see."""
  try:
    with open("/proc/self/stat") as f:
      # Field 22, counted after the command name (which may hold spaces): start time in
      # clock ticks after boot.
      start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    return None
  return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 2)


class TrainingClock:
  """The run's training seconds: a checkpointed total (so it counts across resumes)
  plus the time since the last charge; time the loop spends validating is excluded."""

  def __init__(self):
    self.total = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    self._since = time.perf_counter()

  def charge(self) -> float:
    """Adds the time since the last charge (or skip) to the total; returns the total."""
    now = time.perf_counter()
    self.total.assign_add(now - self._since)
    self._since = now
    return float(self.total.numpy())

  def skip(self) -> None:
    """The time since the last charge is not training time (it was validation)."""
    self._since = time.perf_counter()


class MetricWindow:
  """The train metrics of the meta-steps since the last log line, for their means."""

  def __init__(self) -> None:
    self._values: dict[str, list[float]] = {}
    self.nonfinite_skipped = 0

  def add(self, means: dict, num_steps: int, num_nonfinite: int) -> None:
    """Adds a call's metrics: `means` over its finite steps, of `num_steps` run, of
    which `num_nonfinite` were skipped."""
    self.nonfinite_skipped += num_nonfinite
    for name, value in means.items():  # a mean counts once for each finite step
      self._values.setdefault(name, []).extend([float(value)] * (num_steps - num_nonfinite))

  def drain(self) -> tuple[dict, int]:
    """({train_<metric>: its mean over the window's finite steps (None: none)}, the
    number of non-finite steps skipped); then the window is empty."""
    means = {f"train_{k}": float(np.mean(v)) if v else None for k, v in self._values.items()}
    skipped = self.nonfinite_skipped
    self._values, self.nonfinite_skipped = {}, 0
    return means, skipped


def steps_to_boundary(
  step: int, *, num_steps: int, steps_per_call: int, every: list[int], at: Sequence[int] = ()
) -> int:
  """Meta-steps from `step` to the next multiple of any of `every` (log, validation,
  checkpoint), to the next of the steps `at` (kept checkpoints) or to the end, at most
  steps_per_call."""
  until = min(
    [n - step % n for n in every] + [s - step for s in at if s > step] + [num_steps - step]
  )
  return min(until, steps_per_call)


def _diverged(first_bad: int, checkpoint: checkpointing.RunCheckpoint) -> errors.RunDiverged:
  kept = checkpoint.latest
  return errors.RunDiverged(
    f"meta-step {first_bad + 1} gave a non-finite loss or meta-gradient; stopped "
    f"without applying it, checkpoints kept as they were (latest: "
    f"{os.path.basename(kept) if kept else 'none'}); lower --outer_lr or --inner_lr, "
    f"set --clip_grad_norm, or pass --skip_nonfinite to skip such steps"
  )


def _skipped_too_many(
  skipped: int, step: int, max_fraction: float, checkpoint: checkpointing.RunCheckpoint
) -> errors.RunDiverged:
  kept = checkpoint.latest
  return errors.RunDiverged(
    f"{skipped} of the run's {step} meta-steps were skipped as non-finite, more than "
    f"max_skipped_fraction={max_fraction:g} allows; stopped, checkpoints kept as they were "
    f"(latest: {os.path.basename(kept) if kept else 'none'}); lower --outer_lr or "
    f"--inner_lr, or set --clip_grad_norm"
  )


def train(
  *,
  learner: learner_lib.MetaLearner,
  optimizer: keras.optimizers.Optimizer,
  make_batches: Callable[[int, pipeline.Shard], tf.data.Dataset],
  num_steps: int,
  workdir: str,
  log_every: int = 100,
  checkpoint_every: int = 1000,
  keep_checkpoints_at: Sequence[int] = (),
  validate: Optional[Callable[[], dict]] = None,
  validate_every: int = 1000,
  steps_per_call: int = 1,
  jit_compile: bool = False,
  tasks_per_chunk: int = 0,
  strategy: Optional[tf.distribute.Strategy] = None,
  clip_grad_norm: Optional[float] = None,
  skip_nonfinite: bool = False,
  max_skipped_fraction: float = 0.1,
  progress_stream=sys.stderr,
  run_facts: Optional[dict] = None,
) -> dict:
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
    checkpoint_every: meta-steps between checkpoints (one is always written at the end);
      the latest three are kept, to resume from.
    keep_checkpoints_at: steps whose weights are kept for good in
      workdir/kept_checkpoints (checkpointing.KeptCheckpoints), to score accuracy
      against budget; steps past num_steps are never reached.
    validate: optional () -> {name: float}, run every validate_every steps and at the end.
    validate_every: meta-steps between validations.
    steps_per_call: meta-steps run inside one compiled call (a tf.while_loop), which
      saves the per-step Python round trip where steps are tiny (sinusoid); the
      steps are the same ones, so results do not depend on it beyond round-off
      (oneDNN may fuse ops differently inside the loop).
    jit_compile: compile each meta-step (gradients and update) with XLA, as GPUs and
      TPUs want it; the same steps up to rounding.
    tasks_per_chunk: compute each replica's meta-gradients this many tasks at a time
      (mann.meta.task_chunks; a divisor of the replica's T/R tasks): the same
      gradients up to round-off, with one chunk's activations in memory instead of
      all tasks'. 0: all at once. Needs a learner whose meta-gradient is a mean of
      per-task ones (MAML, FOMAML, Reptile without per-step batch norm).
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
    max_skipped_fraction: with skip_nonfinite, the run stops with errors.RunDiverged
      once more than this fraction of its steps so far (and more than one step) were
      skipped: a run that skips most of its steps is not training. 1.0: never.
    progress_stream: where the progress lines go.
    run_facts: more entries for results.json (e.g. the model's parameter count).

  Returns:
    The results dict also written to workdir/results.json.

  Raises:
    errors.RunDiverged: a non-finite meta-step, without skip_nonfinite.
    errors.UserInputError: the run in workdir is past num_steps, none of its
      checkpoints is readable, or another process trains in workdir (workdir_lock).
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.is_chief(strategy)
  if not chief:  # every worker takes part in a save; only the chief's is the run's
    workdir = os.path.join(workdir, "workers", str(strategy.cluster_resolver.task_id))
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock.hold_workdir(workdir):
    state = _RunState(learner=learner, optimizer=optimizer, strategy=strategy, workdir=workdir)
    schedule = _Schedule(
      num_steps=num_steps,
      steps_per_call=steps_per_call,
      log_every=log_every,
      checkpoint_every=checkpoint_every,
      validate_every=validate_every if validate else None,
      keep_checkpoints_at=tuple(keep_checkpoints_at),
    )
    step = first_step = state.step
    if step > num_steps:  # before the log is cut back or results.json rewritten
      raise errors.UserInputError(
        f"the run in {workdir} is already at step {step}, past num_steps={num_steps}; give "
        f"num_steps={step} or more to go on"
      )
    reporter = _Reporter(
      log=run_log.RunLog(workdir, first_step=first_step, enabled=chief),
      progress=_Progress(first_step, num_steps, progress_stream),
      skip_nonfinite=skip_nonfinite,
    )
    timer = StartupTimer()
    state.clock.skip()
    if step < num_steps:
      batches, replica_spec = steps_lib.replica_batches(strategy, make_batches, first_step)
      meta_steps = steps_lib.MetaSteps(
        learner=learner,
        optimizer=optimizer,
        strategy=strategy,
        replica_spec=replica_spec,
        clip_grad_norm=clip_grad_norm,
        skip_nonfinite=skip_nonfinite,
        steps_per_call=steps_per_call,
        jit_compile=jit_compile,
        tasks_per_chunk=tasks_per_chunk,
      )
    with _stop_requests() as stop:
      while step < num_steps:
        if stop.requested:
          state.clock.charge()
          state.checkpoint.save(step)
          progress_stream.write(
            f"stopped: checkpoint saved at step {step}; rerun the same command to resume\n"
          )
          raise KeyboardInterrupt
        count = schedule.steps_from(step)
        arguments = (batches, tf.constant(step, tf.int64), tf.constant(count, tf.int64))
        means, bad_steps, first_bad = timer.call(meta_steps.run, arguments, count)
        if bad_steps and not skip_nonfinite:
          raise _diverged(first_bad, state.checkpoint)
        state.skipped_total.assign_add(bad_steps)
        reporter.window.add(means, count, bad_steps)
        step += count
        state.step_counter.assign(step)
        if bad_steps:  # the count read back only when it changed
          skipped = int(state.skipped_total.numpy())
          if skipped > 1 and skipped > max_skipped_fraction * step:
            raise _skipped_too_many(skipped, step, max_skipped_fraction, state.checkpoint)
        _at_boundaries(step, state=state, schedule=schedule, reporter=reporter, validate=validate)
    results = _results(
      state, reporter.log, timer, num_steps=num_steps, skip_nonfinite=skip_nonfinite
    )
    results.update(run_facts or {})
    if chief:
      files.write_json(os.path.join(workdir, RESULTS_FILE), results)
    return results


class _RunState:
  """What a checkpoint restores and the loop advances (the step, the training clock, the
  count of skipped steps), and the checkpoints that save it; restored at construction."""

  def __init__(self, *, learner, optimizer, strategy, workdir: str):
    with strategy.scope():
      optimizer.build(learner.trainable_variables)
      self.step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.clock = TrainingClock()
      self.skipped_total = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_skipped")
    self.checkpoint = checkpointing.RunCheckpoint(
      workdir,
      learner=learner,
      optimizer=optimizer,
      step=self.step_counter,
      train_seconds=self.clock.total,
      nonfinite_skipped=self.skipped_total,
    )
    self.kept = checkpointing.KeptCheckpoints(
      workdir, learner=learner, step=self.step_counter, train_seconds=self.clock.total
    )
    if resumed_from := self.checkpoint.restore_latest():
      logging.info("resumed from %s at step %d", resumed_from, self.step)

  @property
  def step(self) -> int:
    return int(self.step_counter.numpy())


@dataclasses.dataclass(frozen=True)
class _Schedule:
  """When the loop logs, validates (validate_every None: never), checkpoints and keeps
  weights, and so how many meta-steps each compiled call runs."""

  num_steps: int
  steps_per_call: int
  log_every: int
  checkpoint_every: int
  validate_every: Optional[int]
  keep_checkpoints_at: tuple[int, ...]

  def steps_from(self, step: int) -> int:
    every = [self.log_every, self.checkpoint_every]
    every += [self.validate_every] if self.validate_every else []
    return steps_to_boundary(
      step,
      num_steps=self.num_steps,
      steps_per_call=self.steps_per_call,
      every=every,
      at=self.keep_checkpoints_at,
    )

  def due(self, step: int, every: Optional[int]) -> bool:
    return every is not None and (step % every == 0 or step == self.num_steps)


@dataclasses.dataclass
class _Reporter:
  """Where the loop's metrics go: the window of train metrics since the last log line,
  log.jsonl (with TensorBoard) and the progress line."""

  log: run_log.RunLog
  progress: "_Progress"
  skip_nonfinite: bool
  window: MetricWindow = dataclasses.field(default_factory=MetricWindow)

  def log_train(self, step: int, train_seconds: float) -> None:
    means, skipped = self.window.drain()
    record = {
      "step": step,
      "train_seconds": train_seconds,
      **means,
      **({"nonfinite_skipped": skipped} if self.skip_nonfinite else {}),
      "rss_mib": _resident_mib(),
    }
    self.log.write(record)
    shown = {k: v for k, v in record.items() if k.startswith("train_") and k != "train_seconds"}
    if skipped:  # said on the progress line, not only in log.jsonl
      shown["nonfinite_skipped"] = skipped
    self.progress.report(step, shown)

  def log_validation(self, step: int, values: dict) -> None:
    validation = {f"validation_{k}": float(v) for k, v in values.items()}
    self.log.write({"step": step, **validation})
    self.progress.report(step, validation)


def _at_boundaries(
  step: int, *, state: _RunState, schedule: _Schedule, reporter: _Reporter, validate
):
  """After the call that reached `step`: log, validate, checkpoint and keep weights where
  the schedule says so; validation time is not training time."""
  if schedule.due(step, schedule.log_every):
    reporter.log_train(step, state.clock.charge())
  # Saved before validating: a crash in validation loses no training.
  if schedule.due(step, schedule.checkpoint_every):
    state.clock.charge()
    state.checkpoint.save(step)
  if step in schedule.keep_checkpoints_at:
    state.clock.charge()
    state.kept.save(step)
  if schedule.due(step, schedule.validate_every):  # None without validate: never due
    state.clock.charge()
    reporter.log_validation(step, validate())
    state.clock.skip()


class StartupTimer:
  """Wraps the compiled meta-steps' calls to time the first: its trace on its own (the
  call then reuses it), the whole first call (trace, graph optimisation and the run),
  and the process's age at its end (start-up), in seconds."""

  def __init__(self) -> None:
    self.trace_seconds: Optional[float] = None
    self.first_call_seconds: Optional[float] = None
    self.startup_seconds: Optional[float] = None

  def call(self, run, arguments: tuple, count: int) -> tuple[dict, int, int]:
    """run(*arguments) -> (means, bad_steps, first_bad), waited for; ints as Python's."""
    started = time.perf_counter()
    if self.trace_seconds is None:
      run.get_concrete_function(*arguments)
      self.trace_seconds = time.perf_counter() - started
      # The trace chose the form of each dtype's grouped convolutions: said once.
      for dtype_name, path in grouped_convolution.paths_chosen().items():
        logging.info(
          "grouped convolutions in %s: %s",
          dtype_name,
          grouped_convolution.describe(dtype_name, path),
        )
    means, bad_steps, first_bad = run(*arguments)
    bad_steps = int(bad_steps)  # waits for the steps
    if self.first_call_seconds is None:
      self.first_call_seconds = time.perf_counter() - started
      self.startup_seconds = process_age_seconds()
      logging.info(
        "first call of %d meta-step(s): %.1f s (trace %.1f s, then graph optimisation and "
        "the run); process start to its end: %s s",
        count,
        self.first_call_seconds,
        self.trace_seconds,
        self.startup_seconds,
      )
    return means, bad_steps, int(first_bad)

  def facts(self) -> dict:
    return {
      # The first call: its trace, and the trace with the graph optimisation and the run.
      "trace_seconds_this_call": self.trace_seconds,
      "first_step_seconds_this_call": self.first_call_seconds,
      # From process start to the end of the first call (imports, data, model, trace).
      "startup_seconds_this_call": self.startup_seconds,
    }


def _results(
  state: _RunState,
  log: run_log.RunLog,
  timer: StartupTimer,
  *,
  num_steps: int,
  skip_nonfinite: bool,
) -> dict:
  """results.json's entries, less the caller's run_facts."""
  return {
    "num_steps": num_steps,
    "train_seconds": float(state.clock.total.numpy()),
    "final_loss": log.last_train.get("train_loss"),
    **{
      f"final_{k}": v
      for k, v in log.last_train.items()
      if k.startswith("train_") and k not in ("train_loss", "train_seconds")
    },
    **log.last_validation,
    **timer.facts(),
    **({"nonfinite_skipped": int(state.skipped_total.numpy())} if skip_nonfinite else {}),
    # {dtype: form} of the task-batched engine's grouped convolutions in this process
    # (mann.models.grouped_convolution; {}: none ran), and the CPU they ran on.
    "grouped_convolution": grouped_convolution.paths_chosen(),
    "machine": machine.describe(),
  }
