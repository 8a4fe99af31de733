r"""Universality (Finn & Levine 2018): how far does one gradient step from a meta-learned
initialisation get as the network deepens and widens, on a family broader than sinusoids?

  python -m experiments.universality --workdir=workdirs/universality

For each of --seeds, --families and each MLP (--depths hidden layers of --width units,
and --widths at depth 2):
  MAML with exactly one inner step is meta-trained for --budget_steps steps
  (experiments.train with experiments/configs/maml_sinusoid.flags: K=10, inner rate
  0.01, 25 tasks per meta-step) in WORKDIR/seed_<s>/<family>/<hidden sizes>/;
  on --num_tasks test tasks of that seed (K support points, --eval_num_queries query
  points each), the query MSE at the meta-learned initialisation and after its one
  inner step, and the support-set MSE after it (how well the step fits the K points);
  beside it the same network from its random initialisation (the run's seed, before
  meta-training), trained by SGD at --scratch_lr on the same K support points, scored on
  the same queries (and the support) after each of --scratch_steps steps;
  for the sinusoid family, the oracle: the least-squares fit within the family from the
  K points (mann.evaluation.oracle), the floor no learner that sees only the K points
  can beat; sinusoid_sum has none (K=10 points do not determine its 15 parameters).
Pooled over the seeds (every seed's tasks together). Writes WORKDIR/universality.json,
universality.md and universality.png (MSE against depth and width). Rerunning the same
command keeps finished runs and resumes unfinished ones.
"""

import os
import sys
import time

from absl import flags
import keras
import numpy as np

from experiments import common
from experiments import data_flags
from experiments import run_folder
from mann import errors
from mann import files
from mann import meta
from mann import models
from mann.analysis import long_adaptation
from mann.data import datasets
from mann.data import pipeline
from mann.evaluation import metrics
from mann.evaluation import oracle

FLAGFILE = os.path.join("experiments", "configs", "maml_sinusoid.flags")

FAMILIES = flags.DEFINE_list(
  "families",
  ["sinusoid_sum", "sinusoid"],
  "Regression families (--dataset values): "
  "sinusoid_sum (sums of 5 sinusoids of random amplitude, frequency and phase), "
  "sinusoid (the MAML paper's).",
)
DEPTHS = flags.DEFINE_list(
  "depths", ["1", "2", "4", "8"], "Hidden layers of the depth sweep, each --width units wide."
)
WIDTH = flags.DEFINE_integer(
  "width", 40, "Units per hidden layer in the depth sweep.", lower_bound=1
)
WIDTHS = flags.DEFINE_list(
  "widths", ["10", "40", "160"], "Units per hidden layer in the width sweep, at depth 2."
)
BUDGET_STEPS = flags.DEFINE_integer(
  "budget_steps", 10000, "Meta-steps of every network.", lower_bound=1
)
NUM_TASKS = flags.DEFINE_integer("num_tasks", 600, "Test tasks per network.", lower_bound=1)
EVAL_NUM_QUERIES = flags.DEFINE_integer(
  "eval_num_queries", 100, "Query points per test task (the support set stays K).", lower_bound=1
)
SCRATCH_STEPS = flags.DEFINE_list(
  "scratch_steps",
  ["100", "1000", "10000"],
  "SGD steps from the random initialisation at which its query MSE is read.",
)
SCRATCH_LR = flags.DEFINE_float("scratch_lr", 0.01, "SGD rate of the from-scratch fits.")
TASKS_PER_BATCH = flags.DEFINE_integer(
  "tasks_per_batch", 100, "Tasks adapted together.", lower_bound=1
)
TRAIN_FLAGS = flags.DEFINE_list(
  "train_flags",
  [],
  "Extra flags for every experiments.train, e.g. --train_flags=--validate_every=500.",
)
SEEDS = flags.DEFINE_list(
  "seeds", ["0"], "Seeds: each network is meta-trained and tested once per seed."
)
WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the sweep (created if missing).")
flags.mark_flag_as_required("workdir")


def _positive_ints(flag, *, allow_empty: bool = False) -> list[int]:
  try:
    values = [int(v) for v in flag.value]
  except ValueError:
    values = [0]
  if (not values and not allow_empty) or (values and min(values) < 1):
    raise errors.UserInputError(f"--{flag.name}={','.join(flag.value)} must be positive integers")
  return values


def _networks() -> list[tuple[int, ...]]:
  """Hidden sizes of every network: the depth sweep, then the width sweep (no repeats)."""
  networks = [(WIDTH.value,) * d for d in _positive_ints(DEPTHS, allow_empty=True)]
  networks += [(w, w) for w in _positive_ints(WIDTHS, allow_empty=True)]
  if not networks:
    raise errors.UserInputError("--depths and --widths are both empty: no network to train")
  return list(dict.fromkeys(networks))


def _on_support(batch):
  """The batch with its support set as the queries: the support-set MSE."""
  return batch._replace(query_x=batch.support_x, query_y=batch.support_y)


def _per_task_mse(tuner: long_adaptation.FineTuner, sampler, steps: list[int]) -> dict:
  """{"query", "support"}: [num_tasks, len(steps)] MSE over the test tasks after each step."""
  batches = list(
    pipeline.episodes(sampler, num_episodes=NUM_TASKS.value, batch_size=TASKS_PER_BATCH.value)
  )
  return {
    "query": np.concatenate([tuner.scores(b, checkpoints=steps)["mse"] for b in batches]),
    "support": np.concatenate(
      [tuner.scores(_on_support(b), checkpoints=steps)["mse"] for b in batches]
    ),
  }


def _oracle_per_task(sampler) -> dict:
  """{"query", "support"}: [num_tasks, 1] MSE of the family's least-squares fit."""
  query, support = [], []
  for batch in pipeline.episodes(
    sampler, num_episodes=NUM_TASKS.value, batch_size=TASKS_PER_BATCH.value
  ):
    on_support, on_query = oracle.sinusoid_least_squares(
      batch.support_x.numpy(), batch.support_y.numpy(), batch.query_x.numpy()
    )
    support.append(((on_support - batch.support_y.numpy()) ** 2).mean(axis=(1, 2)))
    query.append(((on_query - batch.query_y.numpy()) ** 2).mean(axis=(1, 2)))
  return {"query": np.concatenate(query)[:, None], "support": np.concatenate(support)[:, None]}


def _summary(per_task: np.ndarray, steps: list[int]) -> dict:
  """{step: {"mean", "ci95"}} of [num_tasks, len(steps)] per-task scores."""
  return {
    str(s): dict(zip(("mean", "ci95"), metrics.mean_and_ci95(per_task[:, i])))
    for i, s in enumerate(steps)
  }


def _measure(
  family: str, hidden_sizes: tuple[int, ...], workdir: str, seed: int, scratch_steps: list[int]
) -> tuple[dict, dict]:
  """(the row of one network and seed, its per-task MSE arrays for pooling)."""
  learner, _, checkpoint_step, _ = run_folder.load_trained_run(workdir, split="test")
  # The run's K, a larger query set: the same test tasks for the meta-learned and the
  # from-scratch network.
  sampler = datasets.make_sampler(
    family,
    split="test",
    num_ways=1,
    num_shots=data_flags.NUM_SHOTS.value,
    num_queries=EVAL_NUM_QUERIES.value,
    seed=seed,
  )
  per_task = {"meta": _per_task_mse(long_adaptation.FineTuner(learner), sampler, [0, 1])}
  keras.utils.set_random_seed(seed)  # as experiments.train seeds its weights
  fresh = models.mlp(input_size=1, hidden_sizes=hidden_sizes, output_size=1)
  scratch = meta.MAML(
    fresh,
    objective=meta.REGRESSION,
    num_inner_steps=1,
    inner_lr=SCRATCH_LR.value,
    task_mapping="batched",
  )
  per_task["scratch"] = _per_task_mse(
    long_adaptation.FineTuner(scratch), sampler, [0, *scratch_steps]
  )
  if family == "sinusoid":
    per_task["oracle"] = _oracle_per_task(sampler)
  results = common.require_json(
    os.path.join(workdir, "results.json"), written_by="experiments.train"
  )
  row = {
    "family": family,
    "hidden_sizes": list(hidden_sizes),
    "depth": len(hidden_sizes),
    "width": hidden_sizes[0],
    "seed": seed,
    "num_parameters": results["num_parameters"],
    "num_steps": results["num_steps"],
    "checkpoint_step": checkpoint_step,
    "train_hours": results["train_seconds"] / 3600,
    "inner_lr": learner.inner_lr,
    "num_shots": data_flags.NUM_SHOTS.value,
    "num_queries": EVAL_NUM_QUERIES.value,
    **_summaries(per_task, scratch_steps),
  }
  return row, per_task


def _summaries(per_task: dict, scratch_steps: list[int]) -> dict:
  """The row's MSE entries from its per-task arrays (one seed's, or all seeds' stacked)."""
  entries = {
    "meta_mse_by_steps": _summary(per_task["meta"]["query"], [0, 1]),
    "meta_support_mse_by_steps": _summary(per_task["meta"]["support"], [0, 1]),
    "scratch_mse_by_steps": _summary(per_task["scratch"]["query"], [0, *scratch_steps]),
    "scratch_support_mse_by_steps": _summary(per_task["scratch"]["support"], [0, *scratch_steps]),
  }
  if "oracle" in per_task:
    entries["oracle_mse"] = _summary(per_task["oracle"]["query"], [0])["0"]
    entries["oracle_support_mse"] = _summary(per_task["oracle"]["support"], [0])["0"]
  return entries


def _write_table(report: dict, path: str) -> None:
  last = str(report["scratch_steps"][-1])
  seeds = report["seeds"]
  lines = [
    f"# One inner step from a meta-learned initialisation ({report['num_tasks']} "
    f"test tasks per seed, seeds {', '.join(map(str, seeds))} pooled, "
    f"K={report['rows'][0]['num_shots']}, {report['rows'][0]['num_queries']} queries "
    "each; MSE +- 95% CI)",
    "",
    f"Command: `{report['command']}`",
    "",
    "| family | hidden sizes | parameters | meta-steps | train h | MSE at init | "
    "MSE after 1 step | support MSE after 1 step | from scratch, "
    + " / ".join(f"{s}" for s in report["scratch_steps"])
    + f" SGD steps | from scratch, support MSE after {last} | oracle (support MSE) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in report["rows"]:
    cell = lambda d: f"{d['mean']:.3f} +- {d['ci95']:.3f}"
    oracle_cell = (
      f"{cell(row['oracle_mse'])} ({row['oracle_support_mse']['mean']:.2g})"
      if "oracle_mse" in row
      else "none (K points do not determine the task)"
    )
    lines.append(
      f"| {row['family']} | {'x'.join(map(str, row['hidden_sizes']))} | "
      f"{row['num_parameters']:,} | {row['num_steps']} | {row['train_hours']:.2f} | "
      f"{cell(row['meta_mse_by_steps']['0'])} | {cell(row['meta_mse_by_steps']['1'])} | "
      f"{cell(row['meta_support_mse_by_steps']['1'])} | "
      + " / ".join(cell(row["scratch_mse_by_steps"][str(s)]) for s in report["scratch_steps"])
      + f" | {cell(row['scratch_support_mse_by_steps'][last])} | {oracle_cell} |"
    )
  lines += [
    "",
    f"From scratch: the same network at its random initialisation, SGD at rate "
    f"{report['scratch_lr']} on the K support points; the last column's "
    f"{last} steps is the closest to a full fit measured. Oracle: the least-squares fit "
    "of A sin(x - phase) within the family's ranges from the K points; train h: the "
    "seeds' mean.",
  ]
  with files.atomic_write(path) as tmp, open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")


def _plot(report: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  families = report["families"]
  both = (
    ("depth", lambda r: r["width"] == report["width"], "hidden layers"),
    ("width", lambda r: r["depth"] == 2, "units per hidden layer (depth 2)"),
  )
  # A panel per sweep of two networks or more (the depth sweep where neither is).
  sweeps = [
    sweep for sweep in both if len({r[sweep[0]] for r in report["rows"] if sweep[1](r)}) > 1
  ] or both[:1]
  figure, axes = plt.subplots(
    len(families), len(sweeps), figsize=(5 * len(sweeps), 3.6 * len(families)), squeeze=False
  )
  for row_axes, family in zip(axes, families):
    for axis, (key, selects, label) in zip(row_axes, sweeps):
      rows = sorted(
        (r for r in report["rows"] if r["family"] == family and selects(r)), key=lambda r: r[key]
      )
      x = [r[key] for r in rows]
      curves = [
        ("meta-learned init, 0 steps", "meta_mse_by_steps", "0", "C7"),
        ("meta-learned init, 1 step", "meta_mse_by_steps", "1", "C0"),
      ]
      curves += [
        (f"from scratch, {s} SGD steps", "scratch_mse_by_steps", str(s), f"C{i + 1}")
        for i, s in enumerate(report["scratch_steps"])
      ]
      for name, field, step, colour in curves:
        axis.errorbar(
          x,
          [r[field][step]["mean"] for r in rows],
          yerr=[r[field][step]["ci95"] for r in rows],
          marker="o",
          capsize=3,
          label=name,
          color=colour,
        )
      axis.set_xscale("log", base=2)
      axis.set_xticks(x)
      axis.set_xticklabels([str(v) for v in x])
      axis.set_yscale("log")
      axis.set_xlabel(label)
      axis.set_ylabel("query MSE (95% interval)")
      axis.set_title(f"{family}: by {key}")
  axes[0][0].legend(fontsize="small")
  figure.tight_layout()
  with files.atomic_write(path) as tmp:
    figure.savefig(tmp, format="png", dpi=120)
  plt.close(figure)


def _pooled_row(rows: list[dict], per_tasks: list[dict], scratch_steps: list[int]) -> dict:
  """One network's row over its seeds: every seed's test tasks together."""
  stacked = {
    kind: {part: np.concatenate([p[kind][part] for p in per_tasks]) for part in per_tasks[0][kind]}
    for kind in per_tasks[0]
  }
  first = rows[0]
  return {
    **{k: first[k] for k in ("family", "hidden_sizes", "depth", "width", "num_parameters")},
    **{k: first[k] for k in ("num_steps", "inner_lr", "num_shots", "num_queries")},
    "seeds": [r["seed"] for r in rows],
    "train_hours": float(np.mean([r["train_hours"] for r in rows])),
    **_summaries(stacked, scratch_steps),
  }


def main(argv):
  del argv
  for family in FAMILIES.value:
    if not datasets.is_regression(family):
      raise errors.UserInputError(
        f"--families: {family} is not a regression family; use sinusoid_sum or sinusoid"
      )
  networks = _networks()
  scratch_steps = _positive_ints(SCRATCH_STEPS)
  if scratch_steps != sorted(set(scratch_steps)):
    raise errors.UserInputError(f"--scratch_steps must increase, got {scratch_steps}")
  try:
    seeds = [int(s) for s in SEEDS.value]
  except ValueError:
    seeds = []
  if not seeds or len(set(seeds)) != len(seeds):
    raise errors.UserInputError(
      f"--seeds={','.join(SEEDS.value)}: give distinct integers, e.g. 0,1,2"
    )
  sweep_dir = os.path.abspath(WORKDIR.value)
  os.makedirs(sweep_dir, exist_ok=True)
  start = time.time()
  rows, per_seed_rows = [], []
  for family in FAMILIES.value:
    for hidden_sizes in networks:
      seed_rows, per_tasks = [], []
      for seed in seeds:
        name = f"seed {seed} {family} {'x'.join(map(str, hidden_sizes))}"
        workdir = os.path.join(sweep_dir, f"seed_{seed}", family, "x".join(map(str, hidden_sizes)))
        results = common.read_json(os.path.join(workdir, "results.json"))
        if results is None or results["num_steps"] != BUDGET_STEPS.value:
          common.run_binary(
            [
              "experiments.train",
              f"--flagfile={FLAGFILE}",
              f"--dataset={family}",
              f"--mlp_hidden_sizes={','.join(map(str, hidden_sizes))}",
              "--num_inner_steps=1",
              "--num_eval_inner_steps=1",
              f"--num_steps={BUDGET_STEPS.value}",
              f"--seed={seed}",
              f"--workdir={workdir}",
              *TRAIN_FLAGS.value,
            ],
            f"{name}: training",
            driver="universality",
          )
        print(f"universality: {name}: scoring {NUM_TASKS.value} test tasks", flush=True)
        row, per_task = _measure(family, hidden_sizes, workdir, seed, scratch_steps)
        seed_rows.append(row)
        per_tasks.append(per_task)
      per_seed_rows += seed_rows
      rows.append(_pooled_row(seed_rows, per_tasks, scratch_steps))
  report = {
    "command": " ".join(["python -m experiments.universality", *sys.argv[1:]]),
    "families": FAMILIES.value,
    "width": WIDTH.value,
    "budget_steps": BUDGET_STEPS.value,
    "num_tasks": NUM_TASKS.value,
    "scratch_steps": scratch_steps,
    "scratch_lr": SCRATCH_LR.value,
    "seeds": seeds,
    "rows": rows,
    "per_seed_rows": per_seed_rows,
  }
  files.write_json(os.path.join(sweep_dir, "universality.json"), report)
  _write_table(report, os.path.join(sweep_dir, "universality.md"))
  _plot(report, os.path.join(sweep_dir, "universality.png"))
  print(
    f"universality: {len(rows)} networks x {len(seeds)} seeds in {time.time() - start:.0f} s; "
    f"wrote {os.path.join(sweep_dir, 'universality.md')} (.json, .png)"
  )


if __name__ == "__main__":
  common.run(main)
