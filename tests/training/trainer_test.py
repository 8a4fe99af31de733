"""Tests of mann/training/trainer.py: resumption is exact, files are written; the loop's
parts (clock, metric window, call boundaries) alone."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mann import data
from mann import errors
from mann import meta
from mann import models
from mann import training
from mann.data import sampler as sampler_lib
from mann.training import trainer
from tests import class_images
from tests.training import poisoned_learner


def _run(
  workdir,
  num_steps,
  checkpoint_every=2,
  steps_per_call=1,
  jit_compile=False,
  poisoned_steps=(),
  optimizer=None,
  **options,
):
  model, learner, make_batches = poisoned_learner.sinusoid_maml(
    hidden_sizes=(8, 8), poisoned_steps=poisoned_steps
  )
  results = training.train(
    learner=learner,
    optimizer=optimizer or keras.optimizers.Adam(1e-2),
    make_batches=make_batches,
    num_steps=num_steps,
    workdir=str(workdir),
    log_every=2,
    checkpoint_every=checkpoint_every,
    steps_per_call=steps_per_call,
    jit_compile=jit_compile,
    **options,
  )
  return model, results


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
  whole, whole_results = _run(tmp_path / "whole", 8)
  _run(tmp_path / "split", 4)  # "interrupted" after step 4 (a checkpoint is saved there)
  resumed, resumed_results = _run(tmp_path / "split", 8)
  for a, b in zip(whole.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert resumed_results["final_loss"] == whole_results["final_loss"]
  with open(tmp_path / "split" / "log.jsonl") as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == [2, 4, 6, 8]


def _assert_the_same_steps(tmp_path, num_steps, *, rtol, loss_rtol, **options):
  """Trains num_steps plainly and with `options`; the weights and the final loss agree."""
  plain, plain_results = _run(tmp_path / "plain", num_steps, checkpoint_every=num_steps)
  other, other_results = _run(tmp_path / "other", num_steps, checkpoint_every=num_steps, **options)
  for a, b in zip(plain.get_weights(), other.get_weights()):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)
  assert other_results["final_loss"] == pytest.approx(plain_results["final_loss"], rel=loss_rtol)


def test_steps_run_inside_one_call_are_the_same_steps(tmp_path):
  # The same steps on the same meta-batches; with oneDNN on (mann.runtime.configure) the graph
  # rewrites inside the while loop may round differently (3.7e-9 here on an AMD EPYC),
  # so equal to float32 round-off (1.6e-6 relative after 8 Adam steps) rather than bit
  # for bit.
  _assert_the_same_steps(tmp_path, 8, rtol=1e-5, loss_rtol=1e-6, steps_per_call=3)


def test_steps_computed_a_chunk_of_tasks_at_a_time_are_the_same_steps(tmp_path):
  # The same meta-gradients summed in another order: float32 round-off after 6 Adam steps.
  _assert_the_same_steps(tmp_path, 6, rtol=1e-5, loss_rtol=1e-5, tasks_per_chunk=2)
  with pytest.raises(ValueError, match="tasks_per_chunk=3 does not divide the 4 tasks"):
    _run(tmp_path / "bad", 2, tasks_per_chunk=3)


def test_xla_compiled_steps_are_the_same_steps(tmp_path):
  _assert_the_same_steps(tmp_path, 6, rtol=1e-4, loss_rtol=1e-4, jit_compile=True)


def test_resume_redoes_steps_after_the_last_checkpoint(tmp_path):
  # Checkpoints every 4 steps: a run stopped at step 6 (log up to 6) resumes at 4 and
  # drops the log lines past 4 before logging them again.
  _run(tmp_path, 6, checkpoint_every=4)
  with open(tmp_path / "log.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [2, 4, 6]
  _run(tmp_path, 8, checkpoint_every=4)
  with open(tmp_path / "log.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [2, 4, 6, 8]


def test_results_and_logs_are_written(tmp_path):
  _, results = _run(tmp_path, 4)
  with open(tmp_path / "results.json") as f:
    saved = json.load(f)
  assert saved["num_steps"] == 4 and saved["train_seconds"] > 0
  with open(tmp_path / "log.jsonl") as f:
    rss = [json.loads(line)["rss_mib"] for line in f]
  assert len(rss) == 2 and all(100 < r < 100_000 for r in rss)  # TF alone is > 100 MiB
  assert np.isfinite(saved["final_loss"]) and saved == results
  assert os.listdir(tmp_path / "tensorboard")


def test_a_checkpoint_from_before_the_skip_counter_resumes(tmp_path):
  whole, _ = _run(tmp_path / "whole", 8)
  _run(tmp_path / "old", 4)
  # Rewrite ckpt-4 as the trainer wrote it before it checkpointed nonfinite_skipped.
  folder = tmp_path / "old" / "checkpoints"
  keras.utils.set_random_seed(0)
  model = models.mlp(input_size=1, hidden_sizes=(8, 8), output_size=1)
  optimizer = keras.optimizers.Adam(1e-2)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  seconds = tf.Variable(0.0, dtype=tf.float64)
  items = dict(step=step, train_seconds=seconds, optimizer=optimizer, model=model)
  tf.train.Checkpoint(nonfinite_skipped=tf.Variable(0, dtype=tf.int64), **items).restore(
    tf.train.latest_checkpoint(str(folder))
  ).assert_consumed()
  for path in folder.iterdir():
    path.unlink()
  tf.train.CheckpointManager(tf.train.Checkpoint(**items), str(folder), max_to_keep=3).save(
    checkpoint_number=4
  )
  names = {n.split("/")[0] for n, _ in tf.train.list_variables(str(folder / "ckpt-4"))}
  assert "nonfinite_skipped" not in names and "step" in names
  resumed, _ = _run(tmp_path / "old", 8)
  for a, b in zip(whole.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path):
  # A crash mid-write leaves half a JSON line at the end of log.jsonl.
  _run(tmp_path, 4)
  with open(tmp_path / "log.jsonl", "a") as f:
    f.write('{"step": 6, "train_lo')
  _run(tmp_path, 8)
  with open(tmp_path / "log.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [2, 4, 6, 8]


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_a_nonfinite_step_stops_the_run_and_keeps_the_good_checkpoints(tmp_path, steps_per_call):
  with pytest.raises(errors.RunDiverged, match="meta-step 6 gave a non-finite"):
    _run(tmp_path, 8, checkpoint_every=2, steps_per_call=steps_per_call, poisoned_steps=[5])
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
  assert not (tmp_path / "results.json").exists()
  # The kept checkpoint is the uninterrupted run's at step 4.
  clean, _ = _run(tmp_path / "clean", 4, steps_per_call=steps_per_call)
  restored = models.mlp(input_size=1, hidden_sizes=(8, 8), output_size=1)
  learner = meta.MAML(restored, objective=meta.REGRESSION, num_inner_steps=1, inner_lr=0.01)
  assert training.restore_latest(str(tmp_path), learner) == 4
  for a, b in zip(clean.get_weights(), restored.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_skip_nonfinite_skips_the_update_and_counts_it(tmp_path, steps_per_call):
  model, results = _run(
    tmp_path,
    8,
    checkpoint_every=8,
    steps_per_call=steps_per_call,
    poisoned_steps=[2, 5],
    skip_nonfinite=True,
    max_skipped_fraction=0.5,  # 1 of 3, then 2 of 6: within it
  )
  assert results["nonfinite_skipped"] == 2 and np.isfinite(results["final_loss"])
  with open(tmp_path / "log.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["nonfinite_skipped"] for r in records] == [0, 1, 1, 0]
  assert all(np.isfinite(r["train_loss"]) for r in records)
  assert all(np.all(np.isfinite(w)) for w in model.get_weights())
  # Skipping a step is not applying it: with SGD (no state), skipping the one poisoned
  # step 0 leaves the weights where the initialisation was.
  kept, _ = _run(
    tmp_path / "sgd",
    1,
    optimizer=keras.optimizers.SGD(0.1),
    poisoned_steps=[0],
    skip_nonfinite=True,
  )
  keras.utils.set_random_seed(0)
  initial = models.mlp(input_size=1, hidden_sizes=(8, 8), output_size=1)
  for a, b in zip(kept.get_weights(), initial.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_norm", ["per_step", "transductive"])
def test_a_skipped_step_leaves_the_batch_norm_statistics_as_they_were(tmp_path, batch_norm):
  # An inner rate of 1e30 makes every step's loss, meta-gradients and statistics NaN.
  keras.utils.set_random_seed(0)
  model = models.conv4(num_classes=5, image_shape=(14, 14, 1), num_filters=4)
  learner = meta.MAML(
    model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=1e30, batch_norm=batch_norm
  )
  sampler = sampler_lib.FewShotSampler(
    class_images.random_class_images(10, 4, size=14), num_ways=5, num_shots=1, num_queries=2, seed=0
  )
  state = training.state_variables(learner)
  before = [np.array(v) for v in state]
  # (mean, variance) x 4 blocks: the model's, and per_step's for inner steps 0 and 1.
  assert len(before) == (24 if batch_norm == "per_step" else 8)
  results = training.train(
    learner=learner,
    optimizer=keras.optimizers.Adam(1e-3),
    make_batches=lambda start, shard: data.meta_batches(
      sampler, meta_batch_size=2, start_step=start, shard=shard
    ),
    num_steps=3,
    workdir=str(tmp_path),
    log_every=1,
    checkpoint_every=3,
    skip_nonfinite=True,
    max_skipped_fraction=1.0,
  )
  assert results["nonfinite_skipped"] == 3
  for a, b in zip(before, state):
    np.testing.assert_array_equal(a, np.array(b))
  assert training.nonfinite_variables(learner) == []


def test_a_run_that_skips_more_than_its_fraction_stops(tmp_path):
  # 0-based steps 1, 3 and 4 poisoned: 1 of 2, 2 of 4 (at the limit), then 3 of 5.
  with pytest.raises(errors.RunDiverged, match="3 of the run's 5 meta-steps were skipped"):
    _run(tmp_path, 8, poisoned_steps=[1, 3, 4], skip_nonfinite=True, max_skipped_fraction=0.5)
  with open(tmp_path / "log.jsonl") as f:  # the last record: step 4, before the stop
    assert [json.loads(line)["nonfinite_skipped"] for line in f] == [1, 1]


def test_clip_grad_norm_bounds_the_update(tmp_path):
  # SGD at rate 1: the update is minus the (clipped) meta-gradient.
  keras.utils.set_random_seed(0)
  before = [
    w.copy() for w in models.mlp(input_size=1, hidden_sizes=(8, 8), output_size=1).get_weights()
  ]
  after, _ = _run(tmp_path, 1, optimizer=keras.optimizers.SGD(1.0), clip_grad_norm=1e-3)
  step = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after.get_weights(), before)))
  assert step == pytest.approx(1e-3, rel=1e-4)


_THIS_CALL = (
  "trace_seconds_this_call",
  "first_step_seconds_this_call",
  "startup_seconds_this_call",
)


def test_results_of_a_run_resumed_at_its_end_are_the_runs_own(tmp_path):
  _, results = _run(tmp_path, 4)
  _, again = _run(tmp_path, 4)  # nothing left to train: results from the kept log
  assert all(again[name] is None for name in _THIS_CALL)
  # This process started before the run, so its age at the first call's end is longer;
  # the first call holds its trace.
  trace, first_call, startup = (results[name] for name in _THIS_CALL)
  assert 0 < trace < first_call < startup
  for name in _THIS_CALL:
    del results[name], again[name]
  assert again == results


def test_a_smaller_budget_on_resume_is_refused_and_changes_nothing(tmp_path):
  _run(tmp_path, 4)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
  with pytest.raises(errors.UserInputError, match="already at step 4, past num_steps=2"):
    _run(tmp_path, 2)
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_resume_after_an_unreadable_latest_checkpoint_redoes_its_steps(tmp_path):
  whole, whole_results = _run(tmp_path / "whole", 8)
  _run(tmp_path / "split", 6)  # checkpoints at steps 2, 4 and 6
  with open(tmp_path / "split" / "checkpoints" / "ckpt-6.data-00000-of-00001", "r+b") as f:
    f.truncate(10)
  resumed, resumed_results = _run(tmp_path / "split", 8)  # from step 4, with a warning
  for a, b in zip(whole.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert resumed_results["final_loss"] == whole_results["final_loss"]
  with open(tmp_path / "split" / "log.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [2, 4, 6, 8]


def test_the_first_call_runs_the_trace_made_before_it(tmp_path, monkeypatch):
  built = []
  original_init = trainer.steps_lib.MetaSteps.__init__

  def keep(self, **kwargs):
    original_init(self, **kwargs)
    built.append(self)

  monkeypatch.setattr(trainer.steps_lib.MetaSteps, "__init__", keep)
  # 5 steps, 2 a call: calls of 2, 2 and 1 steps, the step counts as tensors.
  _run(tmp_path, 5, steps_per_call=2)
  (meta_steps,) = built
  assert meta_steps.run.experimental_get_tracing_count() == 1


def test_process_age_is_the_time_since_the_process_was_started():
  child = (
    "import time; from mann import training; print(training.process_age_seconds(), time.time())"
  )
  before = time.time()
  out = subprocess.run(
    [sys.executable, "-c", child], capture_output=True, text=True, check=True
  ).stdout
  age, child_now = (float(x) for x in out.split()[-2:])
  since_launch = child_now - before  # the child started after `before`: a bit longer
  assert since_launch > 1.0  # it imported TensorFlow, so the test can see a difference
  assert since_launch - 0.5 < age < since_launch + 0.02  # /proc counts in 10 ms ticks


def test_the_clock_counts_charged_time_and_not_skipped_time():
  clock = trainer.TrainingClock()
  clock.total.assign(100.0)  # as restored from a checkpoint
  time.sleep(0.05)
  first = clock.charge()
  assert 100.04 < first < 101.0
  time.sleep(0.05)
  clock.skip()  # e.g. a validation: not training time
  assert clock.charge() - first < 0.04


def test_the_metric_window_weights_each_call_by_its_finite_steps():
  window = trainer.MetricWindow()
  window.add({"loss": 1.0, "accuracy": 0.5}, num_steps=3, num_nonfinite=0)
  window.add({"loss": 4.0, "accuracy": 0.0}, num_steps=2, num_nonfinite=1)
  means, skipped = window.drain()
  assert means == {
    "train_loss": pytest.approx((3 * 1.0 + 4.0) / 4),
    "train_accuracy": pytest.approx(1.5 / 4),
  }
  assert skipped == 1
  window.add({"loss": 2.0}, num_steps=1, num_nonfinite=1)  # every step skipped
  assert window.drain() == ({"train_loss": None}, 1)
  assert window.drain() == ({}, 0)


@pytest.mark.parametrize(
  "step, expected",
  [
    (0, 4),  # steps_per_call
    (7, 1),  # log at 8
    (8, 2),  # validation at 10
    (10, 2),  # log at 12
    (29, 1),  # the end at 30
  ],
)
def test_a_call_stops_at_the_next_log_validation_checkpoint_or_end(step, expected):
  assert (
    trainer.steps_to_boundary(step, num_steps=30, steps_per_call=4, every=[4, 10, 100]) == expected
  )


def test_a_call_stops_at_the_next_kept_step():
  stops = dict(num_steps=30, steps_per_call=4, every=[100], at=[3, 5, 50])
  assert [trainer.steps_to_boundary(s, **stops) for s in (0, 3, 4, 5, 26)] == [3, 2, 1, 4, 4]


def test_kept_checkpoints_hold_the_weights_at_their_steps_through_a_resume(tmp_path):
  """A kept step's weights are those of a run that ended there, also when the run was
  stopped between kept steps and resumed; the rolling checkpoints are unchanged."""
  _run(tmp_path / "split", 4, keep_checkpoints_at=(3, 7, 50))
  _run(tmp_path / "split", 8, keep_checkpoints_at=(3, 7, 50))
  kept = training.kept_checkpoints(str(tmp_path / "split"))
  assert [step for step, _ in kept] == [3, 7]
  assert sorted(os.listdir(tmp_path / "split" / "checkpoints")) == [
    "checkpoint",
    *(f"ckpt-{s}.{e}" for s in (4, 6, 8) for e in ("data-00000-of-00001", "index")),
  ]
  for step, path in kept:
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    assert "optimizer" not in names and training.checkpoint_train_seconds(path) > 0
    ended_there, _ = _run(tmp_path / f"ended_at_{step}", step)
    restored, learner, _ = poisoned_learner.sinusoid_maml(hidden_sizes=(8, 8))
    for weights in restored.trainable_weights:
      weights.assign(tf.zeros_like(weights))
    assert training.restore_latest(str(tmp_path / "split"), learner, checkpoint=path) == step
    for a, b in zip(ended_there.get_weights(), restored.get_weights()):
      np.testing.assert_array_equal(a, b)
