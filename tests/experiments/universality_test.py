"""experiments.universality end to end with a tiny budget: its one-step MSE is
experiments.evaluate's on the same tasks, its from-scratch row starts at the run's own
random initialisation, its rows pool the seeds' tasks, the sinusoid oracle recovers the
tasks, and a rerun trains nothing."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from mann import models
from mann.data import datasets
from tests import conftest

_TRAIN = [
  "--steps_per_call=2",
  "--validate_every=2",
  "--num_validation_tasks=2",
  "--log_every=2",
  "--meta_batch_size=2",
]
_NUM_TASKS = 6


def _run(*args):
  result = subprocess.run(
    [sys.executable, "-m", *args],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return result


def test_one_step_scores_match_evaluate_and_a_rerun_trains_nothing(tmp_path):
  sweep = [
    "experiments.universality",
    f"--workdir={tmp_path / 'sweep'}",
    "--families=sinusoid_sum,sinusoid",
    "--seeds=0,1",
    "--depths=1",
    "--width=8",
    "--widths=",
    "--budget_steps=4",
    f"--num_tasks={_NUM_TASKS}",
    "--tasks_per_batch=4",
    "--eval_num_queries=7",
    "--scratch_steps=3",
    f"--train_flags={','.join(_TRAIN)}",
  ]
  first = _run(*sweep)
  assert "training:" in first.stdout
  with open(tmp_path / "sweep" / "universality.json") as f:
    report = json.load(f)
  row, sinusoid_row = report["rows"]
  assert [r["seed"] for r in report["per_seed_rows"]] == [0, 1, 0, 1]
  seed_0, seed_1 = report["per_seed_rows"][:2]
  assert row["family"] == "sinusoid_sum" and row["seeds"] == [0, 1]
  assert row["hidden_sizes"] == [8] and row["num_steps"] == 4
  # Pooled over the seeds' tasks (equal counts): the mean is the seeds' mean.
  for key in ("meta_mse_by_steps", "meta_support_mse_by_steps", "scratch_mse_by_steps"):
    for step, pooled in row[key].items():
      expected = (seed_0[key][step]["mean"] + seed_1[key][step]["mean"]) / 2
      np.testing.assert_allclose(pooled["mean"], expected, rtol=1e-9)
  assert seed_0["meta_mse_by_steps"]["1"]["mean"] != seed_1["meta_mse_by_steps"]["1"]["mean"]
  # The oracle, sinusoids only: K=10 exact points determine A and the phase.
  assert "oracle_mse" not in row
  assert sinusoid_row["oracle_mse"]["mean"] < 1e-8
  assert sinusoid_row["oracle_support_mse"]["mean"] < 1e-8
  assert sinusoid_row["scratch_mse_by_steps"]["3"]["mean"] > 1e-3
  assert row["num_parameters"] == 1 * 8 + 8 + 8 * 1 + 1
  assert "sinusoid_sum" in (tmp_path / "sweep" / "universality.md").read_text()
  assert (tmp_path / "sweep" / "universality.png").stat().st_size > 10_000

  # The meta-learned row is experiments.evaluate's, on the same tasks and query points.
  workdir = tmp_path / "sweep" / "seed_0" / "sinusoid_sum" / "8"
  _run(
    "experiments.evaluate",
    f"--workdir={workdir}",
    f"--num_tasks={_NUM_TASKS}",
    "--num_queries=7",
    "--num_eval_inner_steps=1",
  )
  with open(workdir / "eval.json") as f:
    evaluated = json.load(f)
  for step in ("0", "1"):
    np.testing.assert_allclose(
      seed_0["meta_mse_by_steps"][step]["mean"], evaluated["mse_by_steps"][step], rtol=1e-5
    )
    np.testing.assert_allclose(
      seed_0["meta_mse_by_steps"][step]["ci95"], evaluated["ci95_by_steps"][step], rtol=1e-4
    )

  # From scratch, 0 steps: the network as experiments.train seeds it, before meta-training.
  keras.utils.set_random_seed(0)
  network = models.mlp(input_size=1, hidden_sizes=(8,), output_size=1)
  sampler = datasets.make_sampler(
    "sinusoid_sum", split="test", num_ways=1, num_shots=10, num_queries=7, seed=0
  )
  errors, support_errors = [], []
  for index in range(_NUM_TASKS):
    episode = sampler.episode(index)
    prediction = network(np.asarray(episode.query_x)).numpy()
    errors.append(np.mean((prediction - np.asarray(episode.query_y)) ** 2))
    on_support = network(np.asarray(episode.support_x)).numpy()
    support_errors.append(np.mean((on_support - np.asarray(episode.support_y)) ** 2))
  scratch = seed_0["scratch_mse_by_steps"]
  np.testing.assert_allclose(scratch["0"]["mean"], np.mean(errors), rtol=1e-5)
  np.testing.assert_allclose(
    seed_0["scratch_support_mse_by_steps"]["0"]["mean"], np.mean(support_errors), rtol=1e-5
  )
  assert scratch["3"]["mean"] != scratch["0"]["mean"]

  again = _run(*sweep)
  assert "training:" not in again.stdout


def test_bad_seeds_are_one_line_errors_before_anything_is_written(tmp_path):
  for seeds in ("0,x", "1,1"):
    result = subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.universality",
        f"--workdir={tmp_path / 'sweep'}",
        f"--seeds={seeds}",
      ],
      cwd=conftest.REPO_ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "give distinct integers" in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "sweep").exists()
