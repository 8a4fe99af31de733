"""experiments.ablate end to end with a tiny budget: every cell trains by its recipe and
is scored on the same test tasks, at each kept checkpoint too, the tuned cells use the
rate and steps that scored best on the validation classes, the table holds every cell
and every question, and a rerun trains nothing."""

import json
import os
import shutil
import subprocess
import sys

from experiments import ablation_report
from mann import training
from tests import conftest

# Tiny models: the grid's settings, shrunk so that each cell's 2 steps take seconds.
_TINY = [
  "--num_filters=2",
  "--controller_units=4",
  "--memory_size=4",
  "--word_size=2",
  "--num_reads=1",
  "--meta_batch_size=2",
  "--num_validation_tasks=0",
  "--log_every=1",
  "--num_eval_inner_steps=1",
]


def _ablate(tmp_path, omniglot_dir, tfds_data_dir, *extra):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.ablate",
      f"--omniglot_dir={omniglot_dir}",
      f"--data_dir={tfds_data_dir}",
      "--budget_steps=2",
      "--memory_only_budget_steps=3",
      "--num_tasks=3",
      "--tune_inner_lrs=0.05,0.4",
      "--tune_max_inner_steps=2",
      "--num_tune_tasks=2",
      "--ood_sweep=shear=0.5",
      "--ood_test_shots=1,2",
      f"--train_flags={','.join(_TINY)}",
      f"--workdir={tmp_path / 'grid'}",
      *extra,
    ],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=1200,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )


def test_every_cell_runs_on_the_same_tasks_and_a_rerun_trains_nothing(
  tmp_path, omniglot_dir, tfds_data_dir
):
  first = _ablate(tmp_path, omniglot_dir, tfds_data_dir, "--keep_checkpoints_at=1,50")
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  grid_dir = tmp_path / "grid"
  with open(grid_dir / "ablation.json") as f:
    grid = json.load(f)
  names = [
    "lstm_episodic",
    "lstm_maml",
    "mann_episodic",
    "mann_maml",
    "mann_fine_tune",
    "conv4_maml",
    "conv4_transfer",
  ]
  assert list(grid["cells"]) == names
  table = (grid_dir / "ablation.md").read_text()
  for name in names:
    assert f"`{name}`" in table
  assert (grid_dir / "ablation.png").stat().st_size > 10_000
  assert (grid_dir / "ablation_curves.png").stat().st_size > 10_000
  assert (grid_dir / "ablation_ood.png").stat().st_size > 10_000
  assert "| cell | in distribution | shear=0.5 | 2 shots |" in table
  # Every question answered task by task on the shared tasks.
  assert [(c["first"], c["second"]) for c in grid["comparisons"]] == [
    (first, second) for first, second, _ in ablation_report.COMPARISONS
  ]

  digests = set()
  for name in names:
    row = grid["cells"][name]
    trained_as = "mann_episodic" if name == "mann_fine_tune" else name
    output = "eval_fine_tune" if name == "mann_fine_tune" else "eval"
    with open(grid_dir / "seed_0" / trained_as / f"{output}.json") as f:
      report = json.load(f)
    with open(grid_dir / "seed_0" / trained_as / "flags.json") as f:
      run_flags = json.load(f)
    # The memory-only cells train on online sequences for their own budget; every cell
    # at the grid's 20x20.
    memory_only = trained_as in ("lstm_episodic", "mann_episodic")
    budget = 3 if memory_only else 2
    assert run_flags["protocol"] == ("online" if memory_only else "few_shot")
    assert run_flags["image_size"] == 20 and run_flags["num_steps"] == budget
    assert report["checkpoint_step"] == budget and report["num_tasks"] == 3
    assert row["pooled"]["accuracy"] == report["accuracy"]
    assert row["recipe"] and row["recipe"].split(",")[0] in table
    # Kept at step 1 and at the budget, whose score is the last checkpoint's.
    assert [p["step"] for p in row["curve"]] == [1, budget]
    assert row["curve"][-1]["accuracy"] == report["accuracy"]
    assert 0 < row["curve"][0]["train_hours"] <= row["curve"][1]["train_hours"]
    assert row["num_parameters"] > 0 and row["num_steps"] == budget
    if name in ("conv4_transfer", "mann_fine_tune"):
      # Its test rate and steps: the best mean on the validation reports, read here.
      adaptation = "transfer" if name == "conv4_transfer" else "fine_tune"
      scored = []
      for rate in (0.05, 0.4):
        with open(
          grid_dir / "seed_0" / trained_as / f"validation_{adaptation}_lr{rate:g}.json"
        ) as f:
          validation = json.load(f)
        assert validation["split"] == "validation" and validation["num_tasks"] == 2
        scored += [(validation["accuracy_by_steps"][str(k)], -k, -rate) for k in (1, 2)]
      accuracy, steps, rate = max(scored)
      tuning = row["per_seed"]["0"]["tuning"]
      assert (tuning["inner_lr"], tuning["num_steps"]) == (-rate, -steps)
      assert tuning["accuracy"] == accuracy
      assert report["num_eval_inner_steps"] == -steps
      assert report["overrides"].get("inner_lr", run_flags["inner_lr"]) == -rate
      assert f"inner_lr {-rate:g}, {-steps} step" in table
    digests.add(report["tasks_digest"])
    # The out-of-distribution sweep: the same tasks distorted, and tasks of 2 shots (1,
    # the training's, is dropped), each with its reads-zeroed control for a memory cell.
    assert list(row["pooled_ood"]) == ["shear=0.5", "2 shots"]
    for label, suffix in (("shear=0.5", "shear0p5"),):
      with open(grid_dir / "seed_0" / trained_as / f"{output}_{suffix}.json") as f:
        distorted = json.load(f)
      assert distorted["tasks_digest"] == report["tasks_digest"]
      assert distorted["eval_transform"] and distorted["eval_transform"] != report["eval_transform"]
      assert row["pooled_ood"][label]["accuracy"] == distorted["accuracy"]
      assert ("reads_zeroed" in distorted) == name.startswith("mann")
    with open(grid_dir / "seed_0" / trained_as / f"{output}_test_2_shot.json") as f:
      two_shot = json.load(f)
    assert two_shot["num_shots"] == 2 and two_shot["tasks_digest"] != report["tasks_digest"]
    assert row["pooled_ood"]["2 shots"]["accuracy"] == two_shot["accuracy"]
    # Every memory cell carries its reads-zeroed control, read from its eval report.
    assert ("reads_zeroed" in report) == name.startswith("mann")
    if name.startswith("mann"):
      zeroed = row["pooled_reads_zeroed"]
      assert zeroed["accuracy"] == report["reads_zeroed"]["accuracy"]
      assert zeroed["difference"] == report["reads_zeroed"]["difference"]["mean"]
      unused = "(memory unused)" in next(
        line for line in table.splitlines() if line.startswith(f"| `{name}` |")
      )
      assert unused == (not zeroed["memory_used"])
  # One set of test tasks for every cell (conv4's support class by class, the sequence
  # models' shuffled: the same images).
  assert len(digests) == 1
  # Fine-tuning the episodic MANN: 0 inner steps is the episodic MANN's own score.
  fine_tune = grid["cells"]["mann_fine_tune"]["per_seed"]["0"]
  episodic = grid["cells"]["mann_episodic"]["per_seed"]["0"]
  assert fine_tune["num_eval_inner_steps"] >= 1 and episodic["num_eval_inner_steps"] == 0
  assert abs(fine_tune["accuracy_by_steps"]["0"] - episodic["accuracy"]) < 1e-6

  trained = {
    n: os.path.getmtime(grid_dir / "seed_0" / n / "results.json")
    for n in names
    if n != "mann_fine_tune"
  }
  second = _ablate(tmp_path, omniglot_dir, tfds_data_dir, "--keep_checkpoints_at=1,50")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "experiments.train" not in second.stdout and "experiments.evaluate" not in second.stdout
  assert {n: os.path.getmtime(grid_dir / "seed_0" / n / "results.json") for n in trained} == trained

  # A shipped run's kept checkpoints go once scored; its curve stays, read from its report.
  for n in trained:
    shutil.rmtree(grid_dir / "seed_0" / n / training.KEPT_FOLDER)
  third = _ablate(tmp_path, omniglot_dir, tfds_data_dir, "--keep_checkpoints_at=1,50")
  assert third.returncode == 0, third.stderr[-3000:]
  assert "experiments.evaluate" not in third.stdout
  with open(grid_dir / "ablation.json") as f:
    shipped = json.load(f)
  for name in names:
    assert shipped["cells"][name]["curve"] == grid["cells"][name]["curve"]
    assert len(shipped["cells"][name]["curve"]) == 2


def test_unknown_cells_and_a_missing_trained_cell_are_one_line_errors(
  tmp_path, omniglot_dir, tfds_data_dir
):
  for flag, expected in (
    ("--cells=mann_maml,nope", "unknown nope"),
    ("--cells=mann_fine_tune", "add mann_episodic"),
    ("--cells=", "--cells is empty"),
    ("--tune_inner_lrs=0.1,fast", "--tune_inner_lrs=0.1,fast: give numbers above 0"),
    ("--tune_inner_lrs=0", "--tune_inner_lrs=0: give numbers above 0"),
    ("--ood_sweep=shear=0.5;tilt=2", "expected shear=S and/or scale=Z"),
    ("--ood_test_shots=5,x", "give positive integers"),
  ):
    result = _ablate(tmp_path, omniglot_dir, tfds_data_dir, flag)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "grid").exists()
