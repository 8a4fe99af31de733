"""experiments/ablation_report.py: pooled intervals against the pooled per-task scores,
and the table and plot of a grid with an out-of-distribution column."""

import numpy as np

from experiments import ablation_report
from mann.evaluation import metrics


def _report(scores):
  mean, ci95 = metrics.mean_and_ci95(scores)
  return {"accuracy": mean, "ci95": ci95, "num_tasks": len(scores)}


def test_pooled_interval_equals_the_interval_of_all_seeds_tasks():
  rng = np.random.default_rng(0)
  per_seed_scores = [rng.binomial(5, p, size=40) / 5 for p in (0.5, 0.7, 0.9)]
  pooled = ablation_report.pooled([_report(s) for s in per_seed_scores])
  mean, ci95 = metrics.mean_and_ci95(np.concatenate(per_seed_scores))
  np.testing.assert_allclose([pooled["accuracy"], pooled["ci95"]], [mean, ci95], rtol=1e-12)
  assert pooled["num_tasks"] == 120


def _row(memory, adaptation, accuracy, parameters, trained_by=None):
  seed = {"accuracy": accuracy, "ci95": 0.01, "num_tasks": 600, "train_hours": 0.25}
  return {
    "memory": memory,
    "adaptation": adaptation,
    "trained_by": trained_by,
    "per_seed": {"0": seed, "1": seed},
    "pooled": seed,
    "pooled_transformed": {**seed, "accuracy": accuracy - 0.2},
    "num_parameters": parameters,
    "num_steps": 2000,
    "train_hours": 0.25,
    "num_eval_inner_steps": 3,
  }


def _one_seed_grid(cells):
  """A grid of one seed, 600 test tasks and no transform around `cells`."""
  return {
    "command": "c",
    "data": "omniglot 5-way 1-shot",
    "num_ways": 5,
    "budget_steps": 2,
    "seeds": ["0"],
    "num_tasks": 600,
    "eval_transform": None,
    "cells": cells,
  }


def test_table_and_plot_hold_every_cell_and_flag_parameter_gaps(tmp_path):
  grid = {
    "command": "python -m experiments.ablate --budget_steps=2000",
    "data": "omniglot 5-way 1-shot",
    "num_ways": 5,
    "budget_steps": 2000,
    "seeds": ["0", "1"],
    "num_tasks": 600,
    "eval_transform": "shear=0.5,scale=0.75",
    "cells": {
      "mann_maml": _row("mann (LRUA)", "maml", 0.9, 400_000),
      "mann_fine_tune": _row("mann (LRUA)", "fine_tune", 0.5, 400_000, trained_by="mann_episodic"),
      "conv4_maml": _row("conv4 (reference)", "maml", 0.95, 112_000),
    },
  }
  ablation_report.write_table(grid, tmp_path / "ablation.md")
  table = (tmp_path / "ablation.md").read_text()
  rows = [line for line in table.splitlines() if line.startswith("| `")]
  assert [r.split("|")[1].strip() for r in rows] == [
    "`mann_maml`",
    "`mann_fine_tune`",
    "`conv4_maml`",
  ]
  assert "transformed (shear=0.5,scale=0.75)" in table and "per seed" in table
  assert "90.00 +- 1.00" in rows[0] and "70.00 +- 1.00" in rows[0]  # in / out of distribution
  assert "more than 10%" in rows[2] and "more than 10%" not in rows[1]
  assert "(mann_episodic's)" in rows[1]
  assert "training hours per seed" in table and "| 0.25 / 0.25 |" in rows[0]
  ablation_report.plot(grid, tmp_path / "ablation.png")
  assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert ablation_report.transform_suffix("shear=0.5,scale=0.75") == "shear0p5_scale0p75"


def test_paired_comparisons_pool_the_seeds_task_differences_and_test_equivalence():
  rng = np.random.default_rng(2)
  first = [rng.binomial(5, 0.8, size=300) / 5 for _ in range(2)]
  close = [np.clip(f + rng.choice([-0.2, 0.0, 0.2], 300, p=[0.05, 0.9, 0.05]), 0, 1) for f in first]
  far = [f - 0.2 for f in first]
  comparison = ablation_report.paired_comparison(first, close)
  differences = np.concatenate([a - b for a, b in zip(first, close)])
  mean, ci95 = metrics.mean_and_ci95(differences)
  assert comparison["difference"] == mean and comparison["ci95"] == ci95
  assert comparison["num_tasks"] == 600
  expected = metrics.equivalence_test(differences, 0.01)
  assert comparison["p_equivalence"] == expected["p_value"]
  assert comparison["verdict"] == ("equivalent" if expected["equivalent"] else "undecided")
  assert ablation_report.paired_comparison(first, far)["verdict"] == "first higher"
  assert ablation_report.paired_comparison(far, first)["verdict"] == "second higher"
  # Wide noise around no difference: neither a difference nor an equivalence.
  noisy = [rng.binomial(5, 0.5, size=20) / 5 for _ in range(2)]
  assert ablation_report.paired_comparison(noisy, noisy[::-1])["verdict"] == "undecided"


def test_the_table_gives_the_comparisons_and_the_curves(tmp_path):
  row = _row("mann (LRUA)", "maml", 0.9, 400_000)
  curve = [
    {"step": 500, "train_hours": 0.1, "accuracy": 0.5, "ci95": 0.02, "num_tasks": 600},
    {"step": 2000, "train_hours": 0.4, "accuracy": 0.9, "ci95": 0.01, "num_tasks": 600},
  ]
  comparison = {
    "difference": -0.05,
    "ci95": 0.01,
    "p_equivalence": 1.0,
    "margin": 0.01,
    "num_tasks": 600,
    "verdict": "second higher",
  }
  grid = _one_seed_grid(
    {
      "mann_maml": {**row, "curve": curve},
      "conv4_maml": {**_row("conv4 (reference)", "maml", 0.95, 112_000), "curve": []},
    }
  )
  grid["comparisons"] = [
    {
      "first": "mann_maml",
      "second": "conv4_maml",
      "question": "MAML over the MANN against conv4 MAML",
      "in_distribution": comparison,
    }
  ]
  ablation_report.write_table(grid, tmp_path / "ablation.md")
  lines = (tmp_path / "ablation.md").read_text().splitlines()
  (row_line,) = [line for line in lines if line.startswith("| MAML over the MANN against")]
  assert "-5.00 ± 1.00: second higher (TOST p 1)" in row_line
  assert "| cell | 500 steps | 2000 steps |" in lines
  (curve_line,) = [line for line in lines if line.startswith("| `mann_maml` | 50.00")]
  assert curve_line == "| `mann_maml` | 50.00 ± 2.00 (0.10 h) | 90.00 ± 1.00 (0.40 h) |"
  assert ablation_report.plot_curves(grid, tmp_path / "curves.png")
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  grid["cells"]["mann_maml"]["curve"] = []
  assert not ablation_report.plot_curves(grid, tmp_path / "none.png")
  assert not (tmp_path / "none.png").exists()


def test_a_curve_pooled_over_seeds_keeps_the_steps_every_seed_has():
  point = lambda step, accuracy: {
    "step": step,
    "train_hours": step / 1000,
    "accuracy": accuracy,
    "ci95": 0.01,
    "num_tasks": 100,
  }
  curve = ablation_report.pooled_curve(
    [[point(1, 0.5), point(2, 0.7)], [point(1, 0.6), point(2, 0.8), point(3, 0.9)]]
  )
  assert [p["step"] for p in curve] == [1, 2]
  expected = ablation_report.pooled([point(2, 0.7), point(2, 0.8)])
  assert curve[1]["accuracy"] == expected["accuracy"] and curve[1]["ci95"] == expected["ci95"]


def test_a_memory_cells_reads_zeroed_difference_is_pooled_and_named_when_unused(tmp_path):
  rng = np.random.default_rng(1)
  with_reads = [rng.binomial(5, 0.8, size=40) / 5 for _ in range(2)]
  shifts = [rng.normal(0.0, 0.05, size=40) for _ in range(2)]
  per_seed = []
  for scores, shift in zip(with_reads, shifts):
    control, difference = _report(scores - shift), _report(shift)
    per_seed.append(
      {
        **control,
        "difference": difference["accuracy"],
        "difference_ci95": difference["ci95"],
        "memory_used": False,
      }
    )
  pooled = ablation_report.pooled_reads_zeroed(per_seed)
  mean, ci95 = metrics.mean_and_ci95(np.concatenate(shifts))
  np.testing.assert_allclose([pooled["difference"], pooled["difference_ci95"]], [mean, ci95])
  assert pooled["memory_used"] == (abs(mean) > ci95)
  row = _row("mann (LRUA)", "maml", 0.9, 400_000)
  grid = _one_seed_grid(
    {
      "mann_maml": {**row, "pooled_reads_zeroed": {**pooled, "memory_used": False}},
      "mann_episodic": {
        **row,
        "pooled_reads_zeroed": {**pooled, "difference": 0.3, "memory_used": True},
      },
      "conv4_maml": _row("conv4 (reference)", "maml", 0.95, 112_000),
    }
  )
  ablation_report.write_table(grid, tmp_path / "ablation.md")
  rows = {
    line.split("|")[1].strip(): line
    for line in (tmp_path / "ablation.md").read_text().splitlines()
    if line.startswith("| `")
  }
  assert "(memory unused)" in rows["`mann_maml`"]
  assert "+30.00 +- " in rows["`mann_episodic`"] and "unused" not in rows["`mann_episodic`"]
  assert "unused" not in rows["`conv4_maml`"]


def test_the_ood_sweep_has_a_column_and_a_point_per_distortion_and_shot_count(tmp_path):
  shifted = {"shear=0.5": 0.7, "shear=1": 0.5, "scale=0.5": 0.4, "shear=0.5,scale=0.5": 0.3}
  row = _row("conv4 (reference)", "maml", 0.9, 1000)
  row["pooled_ood"] = {
    **{label: {"accuracy": a, "ci95": 0.01, "num_tasks": 600} for label, a in shifted.items()},
    "5 shots": {"accuracy": 0.95, "ci95": 0.01, "num_tasks": 600},
  }
  grid = {
    **_one_seed_grid({"conv4_maml": row}),
    "num_shots": 1,
    "ood_sweep": list(shifted),
    "ood_test_shots": [5],
  }
  path = tmp_path / "ablation.md"
  ablation_report.write_table(grid, str(path))
  table = path.read_text()
  header = "| cell | in distribution | " + " | ".join([*shifted, "5 shots"]) + " |"
  assert header in table
  assert "| `conv4_maml` | 90.00 ± 1.00 | 70.00 ± 1.00 | 50.00 ± 1.00 | 40.00 ± 1.00 |" in table
  ablation_report.plot_ood(grid, str(tmp_path / "ood.png"))
  assert (tmp_path / "ood.png").stat().st_size > 10_000
