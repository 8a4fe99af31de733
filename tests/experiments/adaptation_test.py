"""experiments.adaptation on a tiny trained conv4 MAML run: 0..3 steps give the
evaluation binary's numbers on the same tasks, nothing moves at 0 steps, and the report
and plots are written."""

import json

from tests.experiments import binaries


def test_fine_tuning_curves_match_the_evaluation_and_zero_steps_move_nothing(
  tmp_path, omniglot_dir, tfds_data_dir
):
  run = tmp_path / "run"
  binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_omniglot_5w1s.flags",
    *binaries.omniglot_flags(omniglot_dir, tfds_data_dir),
    f"--workdir={run}",
    "--num_steps=3",
    "--meta_batch_size=2",
    "--num_filters=4",
    "--log_every=1",
    "--num_validation_tasks=0",
  )
  binaries.run_ok("evaluate", f"--workdir={run}", "--num_tasks=4", "--tasks_per_batch=4")
  binaries.run_ok(
    "adaptation",
    f"--runs=maml={run}",
    "--random_init=maml",
    "--steps=0,1,3",
    "--num_tasks=4",
    "--tasks_per_batch=4",
    "--num_curvature_tasks=2",
    "--num_sensitivity_tasks=4",
    "--tune_inner_lr=random",
    "--tune_lrs=0.05,0.4",
    "--num_tune_tasks=2",
    f"--out_dir={tmp_path / 'out'}",
  )
  with open(run / "eval.json") as f:
    evaluation = json.load(f)
  with open(tmp_path / "out" / "adaptation.json") as f:
    report = json.load(f)
  assert list(report["runs"]) == ["maml", "random (maml's model)"]
  maml = report["runs"]["maml"]
  for steps in ("0", "1", "3"):
    assert (
      abs(maml["accuracy_by_steps"][steps]["mean"] - evaluation["accuracy_by_steps"][steps]) < 1e-6
    ), steps
  assert maml["checkpoint_step"] == 3
  assert maml["support_top_hessian_eigenvalue"]["mean"] != 0
  assert maml["support_gradient_norm"]["mean"] > 0
  assert set(maml["cka_before_after"]) == {
    "block0_relu",
    "block1_relu",
    "block2_relu",
    "block3_relu",
    "logits",
  }
  assert all(0 <= v <= 1 + 1e-9 for v in maml["cka_before_after"].values())
  random = report["runs"]["random (maml's model)"]
  assert random["checkpoint_step"] is None
  # The random start's rate: the better validation accuracy after the last step, used
  # on the test tasks; the MAML run keeps its own.
  tuning = random["tuned_inner_lr"]
  assert set(tuning["validation"]) == {"0.05", "0.4"} and tuning["steps"] == 3
  best = max((0.05, 0.4), key=lambda r: tuning["validation"][f"{r:g}"])
  assert tuning["chosen"] == best and random["inner_lr"] == best
  assert maml["tuned_inner_lr"] is None and maml["inner_lr"] == 0.4
  # A fresh conv bias starts at 0: relative travel undefined, absolute travel measured.
  bias = next(n for n in random["relative_travel"] if n.endswith("block0_conv/bias"))
  assert random["relative_travel"][bias] is None and random["absolute_travel"][bias] > 0
  # Sensitivity on the same 4 tasks: the query loss's drop after its one step is the
  # fine-tuning curve's (another code path), and cosines are cosines.
  sensitivity = maml["sensitivity"]
  drop = maml["loss_by_steps"]["0"]["mean"] - maml["loss_by_steps"]["1"]["mean"]
  assert abs(sensitivity["query_loss_drop"]["mean"] - drop) < 1e-4 * max(1.0, abs(drop))
  assert all(-1 <= c <= 1 for c in sensitivity["support_query_cosine"]["per_task"])
  assert len(sensitivity["support_query_cosine"]["per_task"]) == 4
  for name in ("accuracy_by_steps.png", "travel.png", "cka.png", "sensitivity.png"):
    assert (tmp_path / "out" / name).stat().st_size > 5_000
  table = (tmp_path / "out" / "adaptation.md").read_text()
  (row,) = [
    line
    for line in table.splitlines()
    if line.startswith("| maml | ") and "+-" in line.split("|")[2] and line.count("|") == 5
  ]
  assert "Sensitivity at the initialisation (4 tasks" in table
  first = maml["accuracy_by_steps"]["0"]
  assert f"{100 * first['mean']:.2f} +- {100 * first['ci95']:.2f}" in row
  # 0 steps: no weight and no representation moves.
  binaries.run_ok(
    "adaptation",
    f"--runs=maml={run}",
    "--steps=0",
    "--num_tasks=2",
    "--num_curvature_tasks=0",
    "--num_sensitivity_tasks=0",
    f"--out_dir={tmp_path / 'zero'}",
  )
  with open(tmp_path / "zero" / "adaptation.json") as f:
    unmoved = json.load(f)["runs"]["maml"]
  assert all(v == 0 for v in unmoved["absolute_travel"].values())
  assert all(abs(v - 1) < 1e-6 for v in unmoved["cka_before_after"].values())
  bad = binaries.run("adaptation", "--runs=maml", f"--out_dir={tmp_path / 'x'}")
  assert bad.returncode == 2 and "NAME=WORKDIR" in bad.stderr
  bad = binaries.run(
    "adaptation", f"--runs=maml={run}", "--tune_inner_lr=nope", f"--out_dir={tmp_path / 'x'}"
  )
  assert bad.returncode == 2 and "nope names no row" in bad.stderr, bad.stderr[-1000:]
  bad = binaries.run(
    "adaptation",
    f"--runs=maml={run}",
    "--tune_inner_lr=maml",
    "--tune_lrs=0,fast",
    f"--out_dir={tmp_path / 'x'}",
  )
  assert bad.returncode == 2, bad.stderr[-1000:]
  assert "--tune_lrs=0,fast: give numbers above 0" in bad.stderr, bad.stderr[-1000:]
  assert not (tmp_path / "x").exists()


def test_a_reptile_run_gets_the_distribution_of_its_task_update_cosines(tmp_path):
  run = tmp_path / "reptile"
  binaries.run_ok(
    "train",
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    "--algorithm=reptile",
    "--outer_optimizer=sgd",
    "--outer_lr=0.5",
    "--mlp_hidden_sizes=8",
    f"--workdir={run}",
    "--num_steps=2",
    "--meta_batch_size=2",
    "--log_every=1",
    "--num_validation_tasks=0",
  )
  binaries.run_ok(
    "adaptation",
    f"--runs=reptile={run}",
    "--steps=0,1",
    "--num_tasks=4",
    "--num_curvature_tasks=0",
    "--num_sensitivity_tasks=0",
    "--num_update_cosine_tasks=5",
    f"--out_dir={tmp_path / 'out'}",
  )
  with open(tmp_path / "out" / "adaptation.json") as f:
    cosines = json.load(f)["runs"]["reptile"]["task_update_cosines"]
  assert cosines["num_tasks"] == 5 and cosines["num_pairs"] == 10
  assert -1 <= cosines["quantiles"]["0.01"] <= cosines["quantiles"]["0.99"] <= 1
  assert (tmp_path / "out" / "update_cosines.png").stat().st_size > 5_000
  assert "Cosines between tasks' updates" in (tmp_path / "out" / "adaptation.md").read_text()
