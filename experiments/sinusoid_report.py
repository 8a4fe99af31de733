r"""Collects the sinusoid table from the runs of experiments/sinusoid_table.sh, and plots
adapted curves of a few test tasks.

  python -m experiments.sinusoid_report --root=workdirs/sinusoid --out_dir=results/sinusoid

Writes OUT_DIR/table.json, OUT_DIR/table.md (MSE +- 95% CI after 1, 5 and 10 steps,
beside the MAML paper's figures) and OUT_DIR/adapted_curves.png.
"""

import json
import os

from absl import flags
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from experiments import common
from experiments import run_folder
from mann import errors
from mann import files
from mann import meta

ROOT = flags.DEFINE_string("root", None, "WORKDIR_ROOT given to sinusoid_table.sh.")
OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for table.json, table.md, the plot.")
flags.mark_flags_as_required(["root", "out_dir"])

ALGORITHMS = ("maml", "fomaml", "reptile", "transfer")
SHOTS = (5, 10)
STEPS = ("1", "5", "10")
# Finn et al. 2017, Table 2: MSE after 1 / 5 / 10 steps, K=5.
PAPER = {"maml": "0.67 / 0.38 / 0.35", "transfer": "2.41 / 2.23 / 2.19"}
NAMES = {
  "maml": "MAML",
  "fomaml": "first-order MAML",
  "reptile": "Reptile",
  "transfer": "pretrained + fine-tune",
}


def _load_learner(workdir):
  learner, sampler, _, _ = run_folder.load_trained_run(workdir, split="test")
  return learner, sampler


def _plot_curves(root, out):
  """Test tasks 0-2: the truth, the K=10 support points, and the MAML and pretrained
  models before adaptation and after 1 and 10 SGD steps on the support points."""
  grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
  figure, axes = plt.subplots(1, 3, figsize=(15, 4))
  drawn = False
  for algorithm, colour in (("maml", "tab:blue"), ("transfer", "tab:red")):
    workdir = os.path.join(root, f"{algorithm}_k10")
    if tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")) is None:
      continue  # e.g. results/sinusoid/runs keeps no checkpoints
    drawn = True
    learner, sampler = _load_learner(workdir)
    weights = [v.value for v in learner.model.trainable_variables]
    for task, axis in enumerate(axes):
      episode = sampler.episode(task)
      trajectory = meta.sgd_adapt(
        learner.model,
        weights,
        [],
        episode.support_x,
        episode.support_y,
        objective=learner.objective,
        learning_rates=[[learner.inner_lr] * len(weights)] * 10,
        first_order=True,
      )
      for steps, style in ((0, ":"), (1, "--"), (10, "-")):
        prediction = meta.forward(learner.model, trajectory[steps], [], grid, training=False)
        axis.plot(
          grid[:, 0],
          prediction[:, 0],
          style,
          color=colour,
          label=f"{NAMES[algorithm]}, {steps} steps",
        )
      if algorithm == "maml":
        amplitude, phase = (float(v) for v in sampler.task_parameters(task))
        axis.plot(grid[:, 0], amplitude * np.sin(grid[:, 0] - phase), color="black", label="truth")
        axis.scatter(
          episode.support_x[:, 0],
          episode.support_y[:, 0],
          color="black",
          zorder=3,
          label="K=10 support points",
        )
      axis.set_title(f"test task {task}")
      axis.set_xlabel("x")
      axis.set_ylabel("y")
  axes[0].legend(fontsize=7)
  figure.suptitle(
    "Sinusoid regression, K=10: the model before and after SGD steps on the support points"
  )
  figure.tight_layout()
  if not drawn:
    print(f"no maml_k10 or transfer_k10 checkpoint under {root}: {out} not drawn")
    return
  with files.atomic_write(out) as tmp_path:
    figure.savefig(tmp_path, dpi=100, format="png")


def main(argv):
  del argv
  if not os.path.isdir(OUT_DIR.value):
    raise errors.UserInputError(f"--out_dir={OUT_DIR.value} does not exist; create it first")
  table = {}
  lines = [
    "| algorithm | K | MSE after 1 step | 5 steps | 10 steps | paper (K=5), 1 / 5 / 10 |",
    "|---|---|---|---|---|---|",
  ]
  for algorithm in ALGORITHMS:
    for shots in SHOTS:
      path = os.path.join(ROOT.value, f"{algorithm}_k{shots}", "eval.json")
      if not os.path.exists(path):
        continue
      with open(path) as f:
        report = json.load(f)
      with open(os.path.join(ROOT.value, f"{algorithm}_k{shots}", "results.json")) as f:
        trained = json.load(f)
      table[f"{algorithm}_k{shots}"] = {
        "num_tasks": report["num_tasks"],
        "num_queries": report["num_queries"],
        "num_steps": trained["num_steps"],
        "train_seconds": trained["train_seconds"],
        **{f"mse_after_{s}": report["mse_by_steps"][s] for s in STEPS},
        **{f"ci95_after_{s}": report["ci95_by_steps"][s] for s in STEPS},
      }
      cells = [
        f"{report['mse_by_steps'][s]:.3g} +- {report['ci95_by_steps'][s]:.2g}" for s in STEPS
      ]
      paper = PAPER.get(algorithm, "") if shots == 5 else ""
      with open(os.path.join(ROOT.value, f"{algorithm}_k{shots}", "flags.json")) as f:
        outer = json.load(f)["outer_optimizer"]
      # Reptile's paper step is SGD (interpolation); an Adam outer step is a variant.
      name = (
        f"Reptile (SGD inner, {outer} outer step)" if algorithm == "reptile" else NAMES[algorithm]
      )
      table[f"{algorithm}_k{shots}"]["outer_optimizer"] = outer
      lines.append(f"| {name} | {shots} | {' | '.join(cells)} | {paper} |")
  if not table:
    raise errors.UserInputError(f"no */eval.json under --root={ROOT.value}")
  files.write_json(os.path.join(OUT_DIR.value, "table.json"), table)
  with files.atomic_write(os.path.join(OUT_DIR.value, "table.md")) as tmp, open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
  _plot_curves(ROOT.value, os.path.join(OUT_DIR.value, "adapted_curves.png"))
  print("\n".join(lines))


if __name__ == "__main__":
  tf.config.experimental.enable_op_determinism()
  common.run(main)
