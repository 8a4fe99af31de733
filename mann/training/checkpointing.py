"""A run's checkpoints: what a resumed run restores, and weights for evaluation."""

import os
import shutil
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

from mann import errors
from mann.meta import learner as learner_lib

CHECKPOINT_FOLDER = "checkpoints"
KEPT_FOLDER = "kept_checkpoints"
_SKIP_COUNTER = "nonfinite_skipped"
_STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"


class RunCheckpoint:
  """workdir/checkpoints: the learner's weights, the optimiser, the step, the training
  seconds and the count of skipped non-finite steps; the latest three are kept."""

  def __init__(
    self,
    workdir: str,
    *,
    learner: learner_lib.MetaLearner,
    optimizer: keras.optimizers.Optimizer,
    step: tf.Variable,
    train_seconds: tf.Variable,
    nonfinite_skipped: tf.Variable,
  ):
    self._items = dict(
      step=step, train_seconds=train_seconds, optimizer=optimizer, **learner.checkpoint_items()
    )
    self._checkpoint = tf.train.Checkpoint(**{_SKIP_COUNTER: nonfinite_skipped}, **self._items)
    self._manager = tf.train.CheckpointManager(
      self._checkpoint, os.path.join(workdir, CHECKPOINT_FOLDER), max_to_keep=3
    )

  @property
  def latest(self) -> Optional[str]:
    """The latest checkpoint's path prefix (None: none saved)."""
    return self._manager.latest_checkpoint

  def restore_latest(self) -> Optional[str]:
    """Restores every item from the newest intact checkpoint, if any (an unreadable newer
    one is passed over with a warning); returns its path.

    Raises:
      errors.UserInputError: every checkpoint is unreadable, or holds the weights only.
    """
    saved_paths = self._manager.checkpoints
    if not saved_paths:
      return None
    path, broken = _newest_intact(saved_paths)
    if path is None:
      raise errors.UserInputError(
        f"every checkpoint of the run is unreadable: {'; '.join(broken)}; restore the "
        f"files, or start the run afresh in a new --workdir"
      )
    if broken:
      logging.warning(
        "resuming from %s, the newest intact checkpoint: %s unreadable",
        path,
        "; ".join(broken),
      )
    self._restore(path)
    return path

  def _restore(self, latest: str) -> None:
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
    if "optimizer" not in saved:
      raise errors.UserInputError(
        f"{latest} holds the weights only (keep_weights_only): the run can be evaluated "
        f"or used as --init_from, not resumed; train on in a new workdir with --init_from"
      )
    # Checkpoints written before the skip counter existed hold everything else.
    checkpoint = self._checkpoint if _SKIP_COUNTER in saved else tf.train.Checkpoint(**self._items)
    checkpoint.restore(latest).assert_existing_objects_matched()

  def save(self, step: int) -> None:
    self._manager.save(checkpoint_number=step)


class KeptCheckpoints:
  """workdir/kept_checkpoints: the weights at chosen steps (--keep_checkpoints_at), each
  kept for good beside the rolling checkpoints that resume a run: the learner's
  checkpoint items, the step and the training seconds, no optimiser state."""

  def __init__(
    self,
    workdir: str,
    *,
    learner: learner_lib.MetaLearner,
    step: tf.Variable,
    train_seconds: tf.Variable,
  ):
    checkpoint = tf.train.Checkpoint(
      step=step, train_seconds=train_seconds, **learner.checkpoint_items()
    )
    self._manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(workdir, KEPT_FOLDER), max_to_keep=None
    )

  def save(self, step: int) -> None:
    """Writes kept_checkpoints/ckpt-<step> (over one of that step from a run that
    stopped after it and resumed before it)."""
    self._manager.save(checkpoint_number=step)


def state_variables(learner: learner_lib.MetaLearner) -> list:
  """The variables a checkpoint of the learner holds besides its trainable ones: what a
  meta-step may write outside the optimiser (batch-norm statistics, per-step statistics,
  random-seed state)."""
  trainable = {id(v) for v in learner.trainable_variables}
  found, seen = [], set()
  for item in learner.checkpoint_items().values():
    variables = item.variables if isinstance(item, keras.Model) else tf.nest.flatten(item)
    for variable in variables:
      if id(variable) not in trainable and id(variable) not in seen:
        seen.add(id(variable))
        found.append(variable)
  return found


def nonfinite_variables(learner: learner_lib.MetaLearner) -> list[str]:
  """Names of the learner's variables (trainable or state) holding a NaN or infinity."""
  variables = list(learner.trainable_variables) + state_variables(learner)
  return [
    v.name
    for v in variables
    if tf.as_dtype(v.dtype).is_floating and not bool(tf.reduce_all(tf.math.is_finite(v)))
  ]


def unreadable(checkpoint: str) -> Optional[str]:
  """Why the checkpoint path prefix cannot be read, in a few words (an empty or missing
  index, a truncated data file, a checksum that does not match); None if every tensor
  in it reads back."""
  try:
    reader = tf.train.load_checkpoint(checkpoint)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)  # the bundle reader checks each tensor's checksum
  except (tf.errors.OpError, ValueError, IndexError) as e:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" if str(e) else type(e).__name__
  return None


def _readable_latest(workdir: str, checkpoint: Optional[str] = None) -> str:
  """`checkpoint`, else the run's latest checkpoint path prefix, once it reads back.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
    errors.UserInputError: it is unreadable (the message names it).
  """
  folder = os.path.join(workdir, CHECKPOINT_FOLDER)
  latest = checkpoint or tf.train.latest_checkpoint(folder)
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in {folder}")
  reason = unreadable(latest)
  if reason is not None:
    raise errors.UserInputError(
      f"the checkpoint {latest} is unreadable ({reason}); restore its files from a "
      f"copy, or retrain the run"
    )
  return latest


def _newest_intact(paths: list[str]) -> tuple[Optional[str], list[str]]:
  """The newest of the checkpoint path prefixes (oldest first) that reads back (None:
  none does), and 'path (why)' for each newer one that does not."""
  broken: list[str] = []
  for path in reversed(paths):
    reason = unreadable(path)
    if reason is None:
      return path, broken
    broken.append(f"{path} ({reason})")
  return None, broken


def latest_step(workdir: str) -> Optional[int]:
  """The step of the run's newest intact checkpoint, the one a resume restores (None:
  none saved, or none readable)."""
  state = tf.train.get_checkpoint_state(os.path.join(workdir, CHECKPOINT_FOLDER))
  if state is None:
    return None
  path, _ = _newest_intact(list(state.all_model_checkpoint_paths))
  return None if path is None else int(tf.train.load_variable(path, _STEP_KEY))


def checkpoint_train_seconds(checkpoint: str) -> float:
  """The training seconds (across resumes) that the checkpoint path prefix records."""
  return float(tf.train.load_variable(checkpoint, "train_seconds/.ATTRIBUTES/VARIABLE_VALUE"))


def kept_checkpoints(workdir: str) -> list[tuple[int, str]]:
  """(step, path prefix) of each checkpoint kept at a chosen step, by step; [] if none."""
  folder = os.path.join(workdir, KEPT_FOLDER)
  if not os.path.isdir(folder):
    return []
  kept = []
  for name in os.listdir(folder):
    prefix, dot, suffix = name.partition(".")
    if suffix == "index" and prefix.startswith("ckpt-") and prefix[5:].isdigit():
      kept.append((int(prefix[5:]), os.path.join(folder, prefix)))
  return sorted(kept)


def has_checkpoint(workdir: str) -> bool:
  """Whether the run in workdir has saved a checkpoint (a start there resumes)."""
  return tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_FOLDER)) is not None


def restore_latest(
  workdir: str, learner: learner_lib.MetaLearner, checkpoint: Optional[str] = None
) -> int:
  """Loads the learner's weights from the run's latest checkpoint, or from the
  checkpoint path prefix `checkpoint` (e.g. one of kept_checkpoints); returns its step.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
    errors.UserInputError: its checkpoint is unreadable (the message names it).
  """
  latest = _readable_latest(workdir, checkpoint)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  tf.train.Checkpoint(step=step, **learner.checkpoint_items()).restore(
    latest
  ).expect_partial().assert_existing_objects_matched()
  return int(step.numpy())


def restore_model_weights(workdir: str, model: keras.Model) -> int:
  """Loads only `model`'s weights (and batch-norm statistics) from the latest checkpoint
  of the run in workdir, none of the run's optimiser state; returns that checkpoint's
  step.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
    errors.UserInputError: its checkpoint is unreadable (the message names it).
    ValueError, AssertionError: the checkpoint has no model, or one whose weights
      differ in shape or are fewer than this model's.
  """
  latest = _readable_latest(workdir)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  status = tf.train.Checkpoint(step=step, model=model).restore(latest)
  status.expect_partial().assert_existing_objects_matched()
  return int(step.numpy())


def keep_weights_only(workdir: str, learner: learner_lib.MetaLearner) -> int:
  """Replaces the run's checkpoints with one of its latest weights alone: the learner's
  checkpoint items (model, learned rates, statistics), its step and training seconds,
  no optimiser state (a finished run's shippable checkpoint, a third of the size with
  Adam). The run can then be evaluated or used as an initialisation, not resumed.
  Returns the step. The old checkpoints go only once the new one is written; a folder
  that already holds one weights-only checkpoint is left as it is.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
    errors.UserInputError: its checkpoint is unreadable (the message names it).
  """
  folder = os.path.join(workdir, CHECKPOINT_FOLDER)
  latest = _readable_latest(workdir)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  items = dict(step=step, train_seconds=train_seconds, **learner.checkpoint_items())
  tf.train.Checkpoint(**items).restore(latest).expect_partial().assert_existing_objects_matched()
  state = tf.train.get_checkpoint_state(folder)
  has_optimizer = any(name.startswith("optimizer/") for name, _ in tf.train.list_variables(latest))
  if len(state.all_model_checkpoint_paths) == 1 and not has_optimizer:
    return int(step.numpy())  # already weights only: rewriting would change only timestamps
  staging = folder + ".weights_only"
  shutil.rmtree(staging, ignore_errors=True)
  tf.train.CheckpointManager(tf.train.Checkpoint(**items), staging, max_to_keep=1).save(
    checkpoint_number=int(step.numpy())
  )
  shutil.rmtree(folder)
  os.rename(staging, folder)
  return int(step.numpy())
