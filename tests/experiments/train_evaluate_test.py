"""The train and evaluate binaries, run as a user runs them (subprocesses, tiny settings)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import conftest
from tests import image_folders
from tests.experiments import binaries

# A MANN small enough for a 2-step end-to-end run.
_TINY_MANN = [
  "--model=mann",
  "--algorithm=episodic",
  "--controller_units=8",
  "--memory_size=8",
  "--word_size=4",
  "--num_reads=1",
]


def test_sinusoid_train_then_evaluate(tmp_path):
  workdir = tmp_path / "run"
  result = binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={workdir}",
    "--num_steps=20",
    "--meta_batch_size=4",
    "--steps_per_call=5",
    "--log_every=10",
    "--validate_every=10",
    "--num_validation_tasks=8",
    "--checkpoint_every=10",
  )
  assert "ETA" in result.stderr  # progress with rate and ETA
  results = binaries.read_json(workdir / "results.json")
  assert results["num_steps"] == 20 and results["train_seconds"] > 0
  assert results["final_loss"] > 0 and "validation_mse" in results
  binaries.run_ok("evaluate", f"--workdir={workdir}", "--num_tasks=10", "--num_queries=20")
  report = binaries.read_json(workdir / "eval.json")
  assert report["split"] == "test" and report["num_tasks"] == 10
  assert report["checkpoint_step"] == 20 and report["num_queries"] == 20
  assert sorted(report["mse_by_steps"], key=int) == [str(s) for s in range(11)]
  assert report["mse"] == report["mse_by_steps"]["10"] and report["ci95"] > 0
  # A run older than a flag (its flags.json lacks it) had the flag's default: the flag
  # given at evaluate with another value is an override.
  saved = binaries.read_json(workdir / "flags.json")
  del saved["multi_step_loss"]
  (workdir / "flags.json").write_text(json.dumps(saved))
  binaries.run_ok(
    "evaluate",
    f"--workdir={workdir}",
    "--num_tasks=2",
    "--multi_step_loss",
    "--output_name=newer_flag.json",
  )
  assert binaries.read_json(workdir / "newer_flag.json")["overrides"] == {"multi_step_loss": True}
  # Flags that build another model than the checkpoint's: one line naming them.
  line = binaries.one_error_line(
    binaries.run(
      "evaluate", f"--workdir={workdir}", "--mlp_hidden_sizes=10", "--output_name=never.json"
    )
  )
  assert "does not fit the model" in line and "--mlp_hidden_sizes" in line
  assert not (workdir / "never.json").exists()
  # Adaptation stability: small steps descend; steps far above 2 / curvature diverge.
  reports = {}
  for lr in ("0.001", "100"):
    binaries.run_ok(
      "adaptation_stability",
      f"--workdir={workdir}",
      "--num_tasks=3",
      f"--inner_lr={lr}",
      "--num_eval_inner_steps=5",
      "--eigen_steps=2",
      f"--out={tmp_path / lr}.json",
    )
    reports[lr] = binaries.read_json(tmp_path / f"{lr}.json")
  small, large = reports["0.001"], reports["100"]
  assert small["num_diverging"] == 0 and large["num_diverging"] == 3

  def reject(constant):
    raise AssertionError(f"{constant} in the report: not strict JSON")

  with open(tmp_path / "100.json") as f:
    json.load(f, parse_constant=reject)
  assert large["overrides"] == {"inner_lr": 100.0, "num_eval_inner_steps": 5}
  for a, b in zip(small["tasks"], large["tasks"]):
    assert a["support_loss_by_step"][0] == b["support_loss_by_step"][0]  # same tasks
    losses = a["support_loss_by_step"]
    assert len(losses) == 6 and all(x > y for x, y in zip(losses, losses[1:]))
  for task in large["tasks"]:
    assert task["top_hessian_eigenvalue_by_step"][0] > large["stability_bound"] == 0.02


def test_kept_checkpoints_score_as_runs_that_ended_at_their_steps(tmp_path):
  common = [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    "--meta_batch_size=2",
    "--steps_per_call=1",
    "--num_validation_tasks=0",
  ]
  binaries.run_ok(
    "train", *common, "--num_steps=5", "--keep_checkpoints_at=4,2", f"--workdir={tmp_path / 'a'}"
  )
  binaries.run_ok("train", *common, "--num_steps=4", f"--workdir={tmp_path / 'b'}")
  score = ["--num_tasks=6", "--num_eval_inner_steps=2"]
  result = binaries.run_ok("evaluate", f"--workdir={tmp_path / 'a'}", *score, "--kept_checkpoints")
  assert "step 2 (" in result.stdout and "step 4 (" in result.stdout
  binaries.run_ok("evaluate", f"--workdir={tmp_path / 'b'}", *score)
  kept = binaries.read_json(tmp_path / "a" / "eval_kept_checkpoints.json")["by_checkpoint"]
  ended_at_4 = binaries.read_json(tmp_path / "b" / "eval.json")
  assert [entry["checkpoint_step"] for entry in kept] == [2, 4]
  assert 0 < kept[0]["train_seconds"] < kept[1]["train_seconds"]
  assert kept[1]["per_task"] == ended_at_4["per_task"] and kept[1]["mse"] == ended_at_4["mse"]
  assert kept[0]["mse"] != kept[1]["mse"]
  assert not (tmp_path / "a" / "eval.json").exists()  # the latest one's report is apart


@pytest.mark.parametrize("algorithm", ["maml", "transfer"])
def test_omniglot_train_then_evaluate(
  tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters, algorithm
):
  del omniglot_characters  # prepared by the fixture; the binaries read the cache
  workdir = tmp_path / "run"
  binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_omniglot_5w1s.flags",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    f"--workdir={workdir}",
    "--num_steps=3",
    "--meta_batch_size=2",
    "--num_filters=8",
    "--log_every=1",
    "--num_validation_tasks=0",
    f"--algorithm={algorithm}",
  )
  binaries.run_ok("evaluate", f"--workdir={workdir}", "--num_tasks=5", "--tasks_per_batch=5")
  report = binaries.read_json(workdir / "eval.json")
  assert report["num_eval_inner_steps"] == 3 and report["num_tasks"] == 5
  assert 0.0 <= report["accuracy"] <= 1.0 and set(report["accuracy_by_steps"]) == {
    "0",
    "1",
    "2",
    "3",
  }
  if algorithm == "maml":
    # Out of distribution: the same tasks, every image sheared and scaled.
    binaries.run_ok(
      "evaluate",
      f"--workdir={workdir}",
      "--num_tasks=5",
      "--tasks_per_batch=5",
      "--eval_transform=shear=0.5,scale=0.75",
      "--output_name=shifted.json",
    )
    shifted = binaries.read_json(workdir / "shifted.json")
    assert shifted["tasks_digest"] == report["tasks_digest"] is not None
    assert shifted["eval_transform"] == "shear=0.5,scale=0.75"
    assert report["eval_transform"] is None
    assert shifted["accuracy_by_steps"] != report["accuracy_by_steps"]


@pytest.mark.parametrize(
  "model,algorithm,extra",
  [
    (
      "mann",
      "maml",
      [
        "--inner_loss=support_replay",
        "--inner_weights=head",
        "--sequence_encoder=conv4",
        "--key_strength",
      ],
    ),
    ("lstm", "fomaml", ["--inner_loss=support_sequence", "--string_labels"]),
  ],
)
def test_gradient_learners_over_sequence_models_train_then_evaluate(
  tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters, model, algorithm, extra
):
  del omniglot_characters  # prepared by the fixture; the binaries read the cache
  workdir = tmp_path / "run"
  binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_mann_omniglot_5w1s.flags",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    f"--workdir={workdir}",
    "--num_steps=2",
    "--meta_batch_size=2",
    "--num_filters=4",
    "--controller_units=8",
    "--memory_size=8",
    "--word_size=4",
    "--num_reads=1",
    "--image_size=12",
    "--log_every=1",
    "--num_validation_tasks=0",
    f"--model={model}",
    f"--algorithm={algorithm}",
    "--nokey_strength",
    *extra,
  )
  binaries.run_ok(
    "evaluate",
    f"--workdir={workdir}",
    "--num_tasks=4",
    "--tasks_per_batch=4",
    "--num_eval_inner_steps=2",
  )
  report = binaries.read_json(workdir / "eval.json")
  assert report["num_eval_inner_steps"] == 2 and report["num_tasks"] == 4
  assert set(report["accuracy_by_steps"]) == {"0", "1", "2"}
  assert 0.0 <= report["accuracy"] <= 1.0 and report["checkpoint_step"] == 2


# Bad input, one line each: tests/experiments/bad_input_test.py.


def test_train_refuses_a_workdir_of_another_run(tmp_path):
  workdir = tmp_path / "run"
  common = [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={workdir}",
    "--num_steps=2",
    "--meta_batch_size=2",
    "--num_validation_tasks=0",
  ]
  assert binaries.run("train", *common).returncode == 0
  line = binaries.one_error_line(binaries.run("train", *common, "--inner_lr=0.5"))
  assert "inner_lr" in line and "use a new --workdir" in line
  # Where the data lie is not what the run is: a workdir moved to a machine with the data
  # elsewhere resumes (and its budget may grow).
  moved = [f if not f.startswith("--num_steps=") else "--num_steps=3" for f in common]
  binaries.run_ok(
    "train",
    *moved,
    f"--data_dir={tmp_path / 'elsewhere'}",
    f"--omniglot_dir={tmp_path / 'elsewhere'}",
  )
  assert binaries.read_json(workdir / "results.json")["num_steps"] == 3


def test_a_failed_first_start_leaves_nothing_and_an_unwritable_workdir_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  line = binaries.one_error_line(
    binaries.run(
      "train",
      "--flagfile=experiments/configs/maml_omniglot_5w1s.flags",
      f"--omniglot_dir={tmp_path / 'typo'}",
      f"--data_dir={tmp_path / 'tfds'}",
      f"--workdir={workdir}",
    )
  )
  assert "typo" in line
  assert not workdir.exists()
  # The same workdir then takes the run meant (another dataset altogether).
  binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={workdir}",
    "--num_steps=2",
    "--meta_batch_size=2",
    "--num_validation_tasks=0",
  )
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    root_ignores_the_mode = os.access(locked, os.W_OK)
    if root_ignores_the_mode:  # a file in the way instead
      (locked / "run").write_text("")
    line = binaries.one_error_line(
      binaries.run(
        "train",
        "--flagfile=experiments/configs/maml_sinusoid.flags",
        f"--workdir={locked / 'run'}",
        "--num_steps=2",
        "--num_validation_tasks=0",
      )
    )
    if root_ignores_the_mode:
      assert f"--workdir={locked / 'run'} is a file; give a folder" in line
    else:
      assert "cannot write to --workdir" in line
  finally:
    locked.chmod(0o700)


def test_a_diverging_run_stops_with_status_3_and_resumes_with_skip_nonfinite(tmp_path):
  # Outer SGD at 1e30: the first update is huge, the next step's loss is not finite.
  command = [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={tmp_path}",
    "--num_steps=4",
    "--meta_batch_size=2",
    "--num_validation_tasks=0",
    "--steps_per_call=2",
    "--log_every=2",
    "--checkpoint_every=2",
    "--outer_optimizer=sgd",
    "--outer_lr=1e30",
  ]
  result = binaries.run("train", *command)
  assert result.returncode == 3, result.stderr[-2000:]
  (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert "non-finite loss or meta-gradient" in line and "--skip_nonfinite" in line
  assert "Traceback" not in result.stderr and not (tmp_path / "results.json").exists()
  # Skipping is no cure here: every step after the first is non-finite, and a run that
  # skips more than a tenth of its steps stops, saying how many.
  skipping = binaries.run("train", *command, "--skip_nonfinite")
  assert skipping.returncode == 3, skipping.stderr[-2000:]
  (line,) = [line for line in skipping.stderr.splitlines() if line.startswith("error:")]
  # Step 1 (0-based) is the first non-finite one: 1 of 2 skipped, then 3 of 4.
  assert "3 of the run's 4 meta-steps were skipped as non-finite" in line
  assert "max_skipped_fraction=0.1" in line and not (tmp_path / "results.json").exists()
  allowed = binaries.run_ok("train", *command, "--skip_nonfinite", "--max_skipped_fraction=1")
  # Resumed from step 2 (1 skipped before it), both of its steps skipped, and said so.
  assert "nonfinite_skipped 2" in allowed.stderr
  results = binaries.read_json(tmp_path / "results.json")
  assert results["num_steps"] == 4 and results["nonfinite_skipped"] == 3


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
  workdir = tmp_path / "run"
  command = [
    sys.executable,
    "-m",
    "experiments.train",
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={workdir}",
    "--num_steps=1000000",
    "--meta_batch_size=2",
    "--steps_per_call=1",
    "--log_every=20",
    "--checkpoint_every=100000",
    "--num_validation_tasks=0",
  ]
  process = subprocess.Popen(
    command,
    cwd=conftest.REPO_ROOT,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )
  log = workdir / "log.jsonl"
  deadline = time.time() + 300
  while not (log.exists() and log.read_text().strip()) and time.time() < deadline:
    time.sleep(0.5)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 130, stderr[-2000:]
  (stopped,) = [
    line for line in stderr.splitlines() if line.startswith("stopped: checkpoint saved")
  ]
  step = int(stopped.split("at step ")[1].split(";")[0])
  assert step >= 20 and (workdir / "checkpoints" / f"ckpt-{step}.index").exists()
  resume = [
    f if not f.startswith("--num_steps=") else f"--num_steps={step + 20}" for f in command[3:]
  ]
  binaries.run_ok("train", *resume)
  assert binaries.read_json(workdir / "results.json")["num_steps"] == step + 20


def test_a_mixed_bfloat16_mann_trains_float32_weights_and_evaluates_in_its_precision(
  tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters
):
  del omniglot_characters  # prepared by the fixture
  workdir = tmp_path / "run"
  common = [*binaries.omniglot_flags(omniglot_dir, tfds_data_dir), *_TINY_MANN]
  common += ["--protocol=online", "--num_ways=3", "--num_instances=4"]
  binaries.run_ok(
    "train",
    *common,
    "--precision=mixed_bfloat16",
    "--meta_batch_size=2",
    "--num_steps=2",
    "--num_validation_tasks=0",
    f"--workdir={workdir}",
  )
  assert binaries.read_json(workdir / "flags.json")["precision"] == "mixed_bfloat16"
  assert np.isfinite(binaries.read_json(workdir / "results.json")["final_loss"])
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
  dtypes = reader.get_variable_to_dtype_map()
  # Every floating variable (the weights, Adam's moments) is float32, but the clock's.
  floating = [d for n, d in dtypes.items() if d.is_floating and not n.startswith("train_seconds")]
  assert len(floating) > 10 and set(floating) == {tf.float32}
  binaries.run_ok("evaluate", f"--workdir={workdir}", "--num_tasks=4", "--tasks_per_batch=2")
  report = binaries.read_json(workdir / "eval.json")
  assert len(report["accuracy_by_instance"]) == 4
  assert all(0.0 <= a <= 1.0 for a in report["accuracy_by_instance"])


def test_online_protocol_mann_train_then_evaluate(
  tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters
):
  del omniglot_characters  # prepared by the fixture
  workdir = tmp_path / "run"
  binaries.run_ok(
    "train",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    *_TINY_MANN,
    "--protocol=online",
    "--num_ways=3",
    "--num_instances=4",
    "--meta_batch_size=2",
    "--num_steps=2",
    "--log_every=1",
    "--validate_every=2",
    "--num_validation_tasks=2",
    f"--workdir={workdir}",
  )
  with open(workdir / "log.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert "validation_accuracy_instance_2" in records[-1]
  binaries.run_ok("evaluate", f"--workdir={workdir}", "--num_tasks=4", "--tasks_per_batch=2")
  report = binaries.read_json(workdir / "eval.json")
  assert report["protocol"] == "online" and len(report["accuracy_by_instance"]) == 4
  assert all(0.0 <= a <= 1.0 for a in report["accuracy_by_instance"])
  assert report["overrides"] == {}
  # The memory ablation loads the same checkpoint and says so in its report.
  binaries.run_ok(
    "evaluate",
    f"--workdir={workdir}",
    "--num_tasks=4",
    "--tasks_per_batch=2",
    "--zero_reads",
    "--output_name=eval_zero_reads.json",
  )
  ablated = binaries.read_json(workdir / "eval_zero_reads.json")
  assert ablated["overrides"] == {"zero_reads": True}
  assert ablated["checkpoint_step"] == report["checkpoint_step"]
  assert ablated["tasks_digest"] == report["tasks_digest"] is not None  # the same sequences
  assert "reads_zeroed" not in ablated  # the ablation is the score itself
  # The control scored beside the model is that ablation, and its paired difference the
  # difference of the two reports' means (equal episodes, equal lengths).
  control = report["reads_zeroed"]
  assert control["accuracy_by_instance"] == pytest.approx(ablated["accuracy_by_instance"])
  difference = control["difference"]
  assert difference["mean"] == pytest.approx(report["accuracy"] - ablated["accuracy"])
  assert difference["mean_by_instance"] == pytest.approx(
    [a - b for a, b in zip(report["accuracy_by_instance"], ablated["accuracy_by_instance"])]
  )
  assert control["memory_used"] == (abs(difference["mean"]) > difference["ci95"])
  # Per task, in task order: each episode's accuracy, whose means are the reports' and
  # whose differences are the paired difference's.
  assert len(report["per_task"]) == len(control["per_task"]) == 4
  assert np.mean(report["per_task"]) == pytest.approx(report["accuracy"], abs=1e-5)
  assert control["per_task"] == pytest.approx(ablated["per_task"], abs=1e-6)
  assert np.mean(np.subtract(report["per_task"], control["per_task"])) == pytest.approx(
    difference["mean"], abs=1e-5
  )
  # The same weights scored in the few-shot protocol, beside MAML's numbers.
  binaries.run_ok(
    "evaluate",
    f"--workdir={workdir}",
    "--protocol=few_shot",
    "--num_shots=1",
    "--num_queries=2",
    "--num_tasks=4",
    "--tasks_per_batch=2",
    "--output_name=eval_few_shot.json",
  )
  report = binaries.read_json(workdir / "eval_few_shot.json")
  assert report["num_tasks"] == 4 and report["num_eval_inner_steps"] == 0
  assert 0.0 <= report["accuracy"] <= 1.0


def test_few_shot_protocol_mann_trains(tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters):
  del omniglot_characters  # prepared by the fixture
  workdir = tmp_path / "run"
  binaries.run_ok(
    "train",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    *_TINY_MANN,
    "--protocol=few_shot",
    "--num_ways=3",
    "--num_shots=2",
    "--num_queries=1",
    "--sequence_encoder=conv4",
    "--num_filters=4",
    "--meta_batch_size=2",
    "--num_steps=2",
    "--log_every=1",
    "--validate_every=2",
    "--num_validation_tasks=2",
    f"--workdir={workdir}",
  )
  with open(workdir / "log.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert 0.0 <= records[-1]["validation_accuracy"] <= 1.0


def test_online_protocol_needs_a_sequence_model(tmp_path):
  line = binaries.one_error_line(
    binaries.run("train", "--protocol=online", "--model=conv4", f"--workdir={tmp_path / 'run'}")
  )
  assert "--protocol=online" in line


def test_string_labels_lstm_train_then_evaluate(
  tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters
):
  del omniglot_characters  # prepared by the fixture
  workdir = tmp_path / "run"
  binaries.run_ok(
    "train",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    "--protocol=online",
    "--model=lstm",
    "--algorithm=episodic",
    "--string_labels",
    "--num_ways=3",
    "--num_instances=3",
    "--controller_units=8",
    "--meta_batch_size=2",
    "--num_steps=2",
    "--num_validation_tasks=0",
    "--augment_max_shift=2",
    "--augment_max_degrees=10",
    f"--workdir={workdir}",
  )
  binaries.run_ok("evaluate", f"--workdir={workdir}", "--num_tasks=4", "--tasks_per_batch=2")
  report = binaries.read_json(workdir / "eval.json")
  assert len(report["accuracy_by_instance"]) == 3
  # A 5-character guess is right by chance with probability 5**-5: the first
  # presentations are all wrong before the labels have been seen.
  assert report["accuracy_by_instance"][0] < 0.05


def test_string_labels_need_a_sequence_model(tmp_path):
  line = binaries.one_error_line(
    binaries.run("train", "--string_labels", f"--workdir={tmp_path / 'run'}")
  )
  assert "--string_labels needs --model=mann or lstm" in line


def _checkpoint_values(workdir):
  """{variable name: value} of a run's latest checkpoint (weights, optimiser, step)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(workdir / "checkpoints")))
  return {
    name: reader.get_tensor(name)
    for name in reader.get_variable_to_shape_map()
    if "train_seconds" not in name and "save_counter" not in name
  }


def test_sigkill_at_a_random_step_then_resume_ends_as_an_uninterrupted_run(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top

  num_steps = 40
  command = [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    "--num_steps=40",
    "--meta_batch_size=2",
    "--steps_per_call=1",
    "--log_every=1",
    "--checkpoint_every=7",
    "--num_validation_tasks=0",
  ]
  binaries.run_ok("train", *command, f"--workdir={tmp_path / 'whole'}")
  killed = tmp_path / "killed"
  kill_after = int(np.random.default_rng().integers(3, num_steps - 5))  # log lines
  process = subprocess.Popen(
    [sys.executable, "-m", "experiments.train", *command, f"--workdir={killed}"],
    cwd=conftest.REPO_ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )
  log = killed / "log.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if log.exists() and len(log.read_text().splitlines()) >= kill_after:
      break
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)  # no handler runs: whatever was half-done stays
  process.wait(timeout=60)
  binaries.run_ok("train", *command, f"--workdir={killed}")
  whole_log = [
    json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()
  ]
  killed_log = [json.loads(line) for line in log.read_text().splitlines()]
  assert [r["step"] for r in killed_log] == list(range(1, num_steps + 1)), kill_after
  # TensorBoard shows the redone steps once, as log.jsonl does.
  board = killed / "tensorboard"
  loss_steps = sorted(
    event.step
    for name in os.listdir(board)
    for event in tf.compat.v1.train.summary_iterator(str(board / name))
    for value in event.summary.value
    if value.tag == "train_loss"
  )
  assert loss_steps == list(range(1, num_steps + 1)), kill_after
  for a, b in zip(whole_log, killed_log):
    assert a["train_loss"] == b["train_loss"], (kill_after, a["step"])
  whole, resumed = _checkpoint_values(tmp_path / "whole"), _checkpoint_values(killed)
  assert whole.keys() == resumed.keys()
  for name in whole:
    np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)


def test_a_second_trainer_on_a_workdir_is_refused_and_a_killed_ones_lock_does_not_block(tmp_path):
  command = [
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    f"--workdir={tmp_path}",
    "--meta_batch_size=2",
    "--steps_per_call=1",
    "--log_every=1",
    "--checkpoint_every=1000000",  # no checkpoint: the rerun below starts again
    "--num_validation_tasks=0",
  ]
  first = subprocess.Popen(
    [sys.executable, "-m", "experiments.train", *command, "--num_steps=1000000"],
    cwd=conftest.REPO_ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )
  log = tmp_path / "log.jsonl"
  try:
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not log.exists():
      time.sleep(0.05)
    assert first.poll() is None and log.exists()
    line = binaries.one_error_line(binaries.run("train", *command, "--num_steps=1000000"))
    assert first.poll() is None  # the first run goes on
    assert f"{tmp_path} is in use by process {first.pid} on " in line
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
  steps = [json.loads(line)["step"] for line in log.read_text().splitlines()[:-1]]
  assert steps == list(range(1, len(steps) + 1))  # one writer: no step twice
  assert (tmp_path / ".lock").exists()  # the killed run's, which must not block
  binaries.run_ok("train", *command, "--num_steps=3")
  assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
  assert not (tmp_path / ".lock").exists()


def test_an_image_folder_trains_and_evaluates_and_scores_an_omniglot_run_cross_domain(
  tmp_path, omniglot_dir, tfds_data_dir
):
  folder = tmp_path / "folder"
  image_folders.omniglot_image_folder(omniglot_dir, str(folder), num_classes=20, per_class=5)
  small = [
    "--flagfile=experiments/configs/maml_omniglot_5w1s.flags",
    "--num_ways=2",
    "--num_queries=2",
    "--meta_batch_size=2",
    "--num_steps=2",
    "--num_validation_tasks=2",
  ]
  on_folder = [f"--dataset=folder:{folder}", "--grayscale", f"--data_dir={tmp_path / 'tfds'}"]
  run = tmp_path / "run"
  binaries.run_ok("train", *small, *on_folder, f"--workdir={run}")
  binaries.run_ok("evaluate", f"--workdir={run}", "--num_tasks=4")
  scored = binaries.read_json(run / "eval.json")
  assert scored["num_tasks"] == 4 and 0.0 <= scored["accuracy"] <= 1.0
  # Trained on Omniglot, scored on the folder's test classes: the same size and channels.
  omniglot_run = tmp_path / "omniglot_run"
  binaries.run_ok(
    "train",
    *small,
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    f"--workdir={omniglot_run}",
  )
  binaries.run_ok(
    "evaluate",
    f"--workdir={omniglot_run}",
    "--num_tasks=4",
    "--output_name=eval_on_folder.json",
    *on_folder,
  )
  cross = binaries.read_json(omniglot_run / "eval_on_folder.json")
  # The very tasks the folder's own run was scored on (same classes, seed and shape).
  assert cross["tasks_digest"] == scored["tasks_digest"]
  assert 0.0 <= cross["accuracy"] <= 1.0
