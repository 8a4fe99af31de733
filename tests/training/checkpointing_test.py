"""Tests of mann/training/checkpointing.py: a run's items round-trip; weights for evaluation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import errors
from mann import meta
from mann import models
from mann.training import checkpointing


def _learner(seed):
  keras.utils.set_random_seed(seed)
  model = models.mlp(input_size=1, hidden_sizes=(4,), output_size=1)
  return model, meta.MAML(model, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.1)


def _run_checkpoint(workdir, learner, step=0, seconds=0.0, skipped=0):
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(learner.trainable_variables)
  variables = (
    tf.Variable(step, dtype=tf.int64),
    tf.Variable(seconds, dtype=tf.float64),
    tf.Variable(skipped, dtype=tf.int64),
  )
  checkpoint = checkpointing.RunCheckpoint(
    str(workdir),
    learner=learner,
    optimizer=optimizer,
    step=variables[0],
    train_seconds=variables[1],
    nonfinite_skipped=variables[2],
  )
  return checkpoint, optimizer, variables


def test_a_saved_run_restores_every_item(tmp_path):
  saved_model, saved_learner = _learner(0)
  checkpoint, saved_optimizer, _ = _run_checkpoint(tmp_path, saved_learner, 7, 12.5, 2)
  saved_optimizer.iterations.assign(7)
  assert checkpoint.restore_latest() is None  # nothing saved yet
  checkpoint.save(7)
  model, learner = _learner(1)
  restored, optimizer, (step, seconds, skipped) = _run_checkpoint(tmp_path, learner)
  assert restored.restore_latest().endswith("ckpt-7") and restored.latest.endswith("ckpt-7")
  assert (int(step.numpy()), float(seconds.numpy()), int(skipped.numpy())) == (7, 12.5, 2)
  assert int(optimizer.iterations.numpy()) == 7
  for a, b in zip(saved_model.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_restore_latest_loads_the_weights_and_returns_the_step(tmp_path):
  saved_model, saved_learner = _learner(0)
  checkpoint, _, _ = _run_checkpoint(tmp_path, saved_learner, step=30)
  checkpoint.save(30)
  model, learner = _learner(1)
  assert checkpointing.restore_latest(str(tmp_path), learner) == 30
  for a, b in zip(saved_model.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_restore_latest_without_a_checkpoint_names_the_folder(tmp_path):
  _, learner = _learner(0)
  with pytest.raises(FileNotFoundError, match="no checkpoint in .*checkpoints"):
    checkpointing.restore_latest(str(tmp_path), learner)


def _corrupt(prefix, how):
  """Damages the checkpoint at path prefix as a full disk, a torn copy or bit rot would."""
  data, index = f"{prefix}.data-00000-of-00001", f"{prefix}.index"
  if how == "empty index":
    open(index, "w").close()
  elif how == "truncated data":
    with open(data, "r+b") as f:
      f.truncate(10)
  else:  # a flipped byte: the size is right, the checksum is not
    with open(data, "r+b") as f:
      f.seek(5)
      byte = f.read(1)
      f.seek(5)
      f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("how", ["empty index", "truncated data", "flipped byte"])
def test_resume_passes_over_an_unreadable_latest_checkpoint_and_says_so(tmp_path, how, caplog):
  older_model, learner = _learner(0)
  checkpoint, _, (step, _, _) = _run_checkpoint(tmp_path, learner, step=3)
  checkpoint.save(3)
  older = [w.copy() for w in older_model.get_weights()]
  for weight in older_model.weights:
    weight.assign(weight + 1.0)
  step.assign(5)
  checkpoint.save(5)
  assert checkpointing.unreadable(checkpoint.latest) is None
  _corrupt(checkpoint.latest, how)
  assert checkpointing.unreadable(checkpoint.latest) is not None

  model, fresh = _learner(1)
  restored, _, (restored_step, _, _) = _run_checkpoint(tmp_path, fresh)
  with caplog.at_level("WARNING"):
    assert restored.restore_latest().endswith("ckpt-3")
  assert int(restored_step.numpy()) == 3
  for a, b in zip(older, model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert any("ckpt-5" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
  # Evaluation names the broken file instead of passing over it.
  with pytest.raises(errors.UserInputError, match=r"ckpt-5 is unreadable"):
    checkpointing.restore_latest(str(tmp_path), fresh)


def test_resume_with_every_checkpoint_unreadable_is_one_error(tmp_path):
  _, learner = _learner(0)
  checkpoint, _, (step, _, _) = _run_checkpoint(tmp_path, learner, step=3)
  checkpoint.save(3)
  step.assign(5)
  checkpoint.save(5)
  for prefix in ("ckpt-3", "ckpt-5"):
    _corrupt(str(tmp_path / "checkpoints" / prefix), "truncated data")
  restored, _, _ = _run_checkpoint(tmp_path, _learner(1)[1])
  with pytest.raises(errors.UserInputError, match="every checkpoint of the run is unreadable"):
    restored.restore_latest()
