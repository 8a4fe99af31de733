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


def test_comparisons_say_when_intervals_overlap(tmp_path):
  result = lambda accuracy, ci95: {"accuracy": accuracy, "ci95": ci95}
  assert ablation_report.compare(result(0.90, 0.01), result(0.915, 0.01)).startswith(
    "intervals overlap"
  )
  assert ablation_report.compare(result(0.90, 0.01), result(0.93, 0.01)) == "second higher"
  assert ablation_report.compare(result(0.95, 0.01), result(0.90, 0.02)) == "first higher"
  grid = _one_seed_grid(
    {
      "mann_maml": _row("mann (LRUA)", "maml", 0.9, 400_000),
      "conv4_maml": _row("conv4 (reference)", "maml", 0.95, 112_000),
    }
  )
  ablation_report.write_table(grid, tmp_path / "ablation.md")
  (row,) = [
    line
    for line in (tmp_path / "ablation.md").read_text().splitlines()
    if line.startswith("| MAML over the MANN against conv4 MAML")
  ]
  assert "[89.00, 91.00] vs [94.00, 96.00]: second higher" in row


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
