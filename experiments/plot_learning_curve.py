r"""Plots a run's learning curve from WORKDIR/log.jsonl: training loss and metric, and the
validation metric, against meta-steps, and where logged (MAML, Reptile over task-batched
models) the mean pairwise cosine of the tasks' updates; --compare overlays other runs.

  python -m experiments.plot_learning_curve --workdir=workdirs/maml_omniglot_5w1s \
      --out=results/maml_omniglot_5w1s_learning_curve.png
  python -m experiments.plot_learning_curve --workdir=workdirs/a --compare=workdirs/b \
      --out=a_vs_b.png
"""

import json
import os

from absl import flags
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

from experiments import common
from mann import errors
from mann import files

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
COMPARE = flags.DEFINE_list("compare", [], "Other runs' workdirs, drawn on the same axes.")
OUT = flags.DEFINE_string("out", None, "PNG to write (default: WORKDIR/learning_curve.png).")
TITLE = flags.DEFINE_string("title", None, "Figure title (default: the workdir's name).")
flags.mark_flag_as_required("workdir")


def _read_log(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "log.jsonl")
  if not os.path.exists(path):
    raise errors.UserInputError(f"{path} not found: --workdir must be a run of experiments.train")
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


_COSINE = "train_task_update_cosine"
_INSTANCE_STYLES = ("-", "--", ":", "-.")
_INSTANCE_MARKERS = ("o", "s", "^", "v", "D", "x")


def _plot_run(records, loss_axis, metric_axis, cosine_axis, name, colour):
  """One run's training loss, training metric and validation metric (and task-update
  cosine, on cosine_axis), all in its colour (line style and marker tell its curves
  apart)."""
  train = [r for r in records if "train_loss" in r]
  validation = [r for r in records if any(k.startswith("validation_") for k in r)]
  metric = next(
    (
      k[len("train_") :]
      for k in (train[0] if train else {})
      if k.startswith("train_") and k not in ("train_loss", "train_seconds", _COSINE)
    ),
    None,
  )
  cosine = [r for r in train if _COSINE in r]
  if cosine_axis is not None and cosine:
    cosine_axis.plot(
      [r["step"] for r in cosine],
      [r[_COSINE] for r in cosine],
      color=colour,
      label=f"tasks' updates, mean pairwise cosine{name}",
    )
  loss_axis.plot(
    [r["step"] for r in train],
    [r["train_loss"] for r in train],
    color=colour,
    label=f"meta-train loss{name}",
  )
  if metric:
    metric_axis.plot(
      [r["step"] for r in train],
      [r[f"train_{metric}"] for r in train],
      color=colour,
      alpha=0.35,
      linewidth=0.8,
      label=f"meta-train {metric}{name}",
    )
    points = [r for r in validation if f"validation_{metric}" in r]
    if points:
      metric_axis.errorbar(
        [r["step"] for r in points],
        [r[f"validation_{metric}"] for r in points],
        yerr=[r.get(f"validation_{metric}_ci95", 0.0) for r in points],
        color=colour,
        marker="o",
        capsize=3,
        label=f"validation {metric} (95% CI){name}",
      )
    metric_axis.set_ylabel(metric)
  # The online protocol validates accuracy by instance (1st, 2nd, ... presentation).
  instance_keys = sorted(
    {k for r in validation for k in r if k.startswith("validation_accuracy_instance_")},
    key=lambda k: int(k.rsplit("_", 1)[1]),
  )
  for index, key in enumerate(instance_keys):
    points = [r for r in validation if key in r]
    metric_axis.plot(
      [r["step"] for r in points],
      [r[key] for r in points],
      color=colour,
      linestyle=_INSTANCE_STYLES[index % len(_INSTANCE_STYLES)],
      marker=_INSTANCE_MARKERS[index % len(_INSTANCE_MARKERS)],
      markersize=3,
      label=f"validation, instance {key.rsplit('_', 1)[1]}{name}",
    )


def main(argv):
  del argv
  runs = {w: _read_log(w) for w in [WORKDIR.value] + COMPARE.value}
  with_cosine = any(_COSINE in r for records in runs.values() for r in records)
  # Compared runs: one colour each, legends beside the axes rather than over the curves.
  panels = 3 if with_cosine else 2
  figure, axes = plt.subplots(1, panels, figsize=((8 if COMPARE.value else 5.5) * panels, 4))
  loss_axis, metric_axis = axes[:2]
  cosine_axis = axes[2] if with_cosine else None
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for index, (workdir, records) in enumerate(runs.items()):
    name = f" ({os.path.basename(os.path.normpath(workdir))})" if COMPARE.value else ""
    _plot_run(records, loss_axis, metric_axis, cosine_axis, name, colours[index % len(colours)])
  loss_axis.set_ylabel("meta-train query loss (after inner steps)")
  loss_axis.set_yscale("log")
  if cosine_axis is not None:
    cosine_axis.axhline(0.0, color="grey", linewidth=0.6)
    cosine_axis.set_ylabel("mean pairwise cosine of the tasks' updates")
  for axis in axes:
    axis.set_xlabel("meta-step")
  for axis in axes:
    if not axis.get_legend_handles_labels()[0]:
      continue
    if COMPARE.value:
      axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
      axis.legend(fontsize=8)
  figure.suptitle(TITLE.value or os.path.basename(os.path.normpath(WORKDIR.value)))
  figure.tight_layout()
  out = OUT.value or os.path.join(WORKDIR.value, "learning_curve.png")
  with files.atomic_write(out) as tmp_path:
    figure.savefig(tmp_path, dpi=100, format="png")
  print(f"wrote {out}")


if __name__ == "__main__":
  common.run(main)
