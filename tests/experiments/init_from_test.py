"""experiments.train --init_from: a run starts from another run's model weights, with a
fresh optimiser and step; a missing run or another model is refused in one line with
nothing written."""

import os

import numpy as np
import tensorflow as tf

from tests.experiments import binaries

# A sinusoid MAML run small enough for a test.
_SINUSOID = [
  "--flagfile=experiments/configs/maml_sinusoid.flags",
  "--meta_batch_size=2",
  "--steps_per_call=1",
  "--log_every=1",
  "--checkpoint_every=100",
  "--num_validation_tasks=0",
]


def _variables(workdir):
  """{name: value} of every variable of the run's latest checkpoint."""
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _trainable(values):
  """The trainable variables' values, in their saved order (the optimiser's list)."""
  prefix = "optimizer/_trainable_variables/"
  names = sorted(
    (n for n in values if n.startswith(prefix)), key=lambda n: int(n[len(prefix) :].split("/")[0])
  )
  return [values[n] for n in names]


def test_a_run_starts_from_the_other_runs_weights_with_a_fresh_optimiser(tmp_path):
  source, started = tmp_path / "source", tmp_path / "started"
  binaries.run_ok("train", *_SINUSOID, "--num_steps=4", f"--workdir={source}")
  # At a zero outer rate the started run's one step leaves the weights where it found them.
  binaries.run_ok(
    "train",
    *_SINUSOID,
    "--num_steps=1",
    "--outer_lr=0",
    "--seed=7",
    f"--init_from={source}",
    f"--workdir={started}",
  )
  before, after = _variables(source), _variables(started)
  for got, want in zip(_trainable(after), _trainable(before), strict=True):
    np.testing.assert_array_equal(got, want)
  # Its own step and optimiser: one step counted, not the source's four plus one.
  assert after["step/.ATTRIBUTES/VARIABLE_VALUE"] == 1
  assert after["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 1
  assert before["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 4
  results = binaries.read_json(started / "results.json")
  assert results["init_from"] == {"run": str(source), "step": 4}
  # Without --init_from the same seed-7 run starts elsewhere.
  fresh = tmp_path / "fresh"
  binaries.run_ok(
    "train", *_SINUSOID, "--num_steps=1", "--outer_lr=0", "--seed=7", f"--workdir={fresh}"
  )
  assert not np.array_equal(_trainable(_variables(fresh))[0], _trainable(before)[0])


def test_a_missing_run_or_another_model_is_refused_and_nothing_is_written(tmp_path):
  source = tmp_path / "source"
  binaries.run_ok("train", *_SINUSOID, "--num_steps=1", f"--workdir={source}")
  refused = tmp_path / "refused"
  line = binaries.one_error_line(
    binaries.run(
      "train",
      *_SINUSOID,
      "--num_steps=1",
      f"--init_from={tmp_path / 'nothing'}",
      f"--workdir={refused}",
    )
  )
  assert "flags.json not found" in line and "--init_from" in line
  line = binaries.one_error_line(
    binaries.run(
      "train",
      *_SINUSOID,
      "--num_steps=1",
      "--mlp_hidden_sizes=8",
      f"--init_from={source}",
      f"--workdir={refused}",
    )
  )
  assert "--mlp_hidden_sizes=40,40 there, 8 here" in line
  assert not refused.exists()


def test_a_run_kept_as_weights_only_evaluates_the_same_and_starts_others(tmp_path):
  """experiments.keep_weights_only: the same eval.json figures from a third of the
  checkpoint; resuming it is refused in one line; --init_from still reads it."""
  run = tmp_path / "run"
  binaries.run_ok("train", *_SINUSOID, "--num_steps=3", f"--workdir={run}")
  evaluate = ["--num_tasks=4", "--num_eval_inner_steps=1"]
  binaries.run_ok("evaluate", f"--workdir={run}", *evaluate, "--output_name=before.json")
  before = _variables(run)
  result = binaries.run_ok("keep_weights_only", f"--workdir={run}")
  assert "the weights of step 3 alone" in result.stdout
  after = _variables(run)
  assert not any(n.startswith("optimizer/_variables") for n in after)
  assert any(n.startswith("optimizer/_variables") for n in before)
  assert after["step/.ATTRIBUTES/VARIABLE_VALUE"] == 3
  assert sorted(os.listdir(run / "checkpoints")) == [
    "checkpoint",
    "ckpt-3.data-00000-of-00001",
    "ckpt-3.index",
  ]
  files = {
    name: (run / "checkpoints" / name).read_bytes() for name in os.listdir(run / "checkpoints")
  }
  binaries.run_ok("keep_weights_only", f"--workdir={run}")  # a second time: nothing changes
  assert files == {
    name: (run / "checkpoints" / name).read_bytes() for name in os.listdir(run / "checkpoints")
  }
  binaries.run_ok("evaluate", f"--workdir={run}", *evaluate, "--output_name=after.json")
  first, second = (binaries.read_json(run / n) for n in ("before.json", "after.json"))
  assert first["mse"] == second["mse"] and first["checkpoint_step"] == second["checkpoint_step"]
  line = binaries.one_error_line(
    binaries.run("train", *_SINUSOID, "--num_steps=5", f"--workdir={run}")
  )
  assert "holds the weights only" in line and "--init_from" in line
  binaries.run_ok(
    "train", *_SINUSOID, "--num_steps=1", f"--init_from={run}", f"--workdir={tmp_path / 'next'}"
  )
