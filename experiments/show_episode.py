r"""Draws one episode to a PNG, so that a person can check a sampler by looking at it.

  python -m experiments.show_episode --dataset=omniglot \
      --omniglot_dir=../shared/data/omniglot --num_ways=5 --num_shots=1 --out=episode.png

Classification: one row per label 0..N-1, its K support images first (blue frame),
then its Q query images (orange frame), each titled with the label the sampler
gave it. Sinusoid: the task's true curve with its support and query points.
"""

from absl import flags
import matplotlib

matplotlib.use("Agg")  # no screen: draw to a file
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import common
from experiments import data_flags
from mann import files
from mann.data import episode as episode_lib

SPLIT = flags.DEFINE_enum(
  "split", "train", ["train", "validation", "test"], "Which split's classes to draw from."
)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the episode sampler.")
EPISODE_INDEX = flags.DEFINE_integer(
  "episode_index", 0, "Which episode of the seed's stream.", lower_bound=0
)
OUT = flags.DEFINE_string("out", "episode.png", "Where to write the PNG.")
MAX_QUERIES_SHOWN = flags.DEFINE_integer(
  "max_queries_shown", 5, "Query images drawn per class (all are sampled).", lower_bound=0
)

_SUPPORT_COLOUR, _QUERY_COLOUR = "tab:blue", "tab:orange"


def _draw_classification(episode, sampler, index, title):
  """A grid: row = label, columns = K support then min(Q, max) query images; each
  row is named by the source class that the label stands for."""
  classes, _ = sampler.episode_image_indices(index)
  num_ways, num_shots = sampler.num_ways, sampler.num_shots
  num_queries = min(sampler.num_queries, MAX_QUERIES_SHOWN.value)
  columns = num_shots + num_queries
  figure, axes = plt.subplots(
    num_ways, columns, squeeze=False, figsize=(max(1.2 * columns, 6.0), 1.3 * num_ways + 0.6)
  )
  for label in range(num_ways):
    cells = [
      (
        episode.support_x[label * num_shots + k],
        episode.support_y[label * num_shots + k],
        "support",
        _SUPPORT_COLOUR,
      )
      for k in range(num_shots)
    ]
    cells += [
      (
        episode.query_x[label * sampler.num_queries + q],
        episode.query_y[label * sampler.num_queries + q],
        "query",
        _QUERY_COLOUR,
      )
      for q in range(num_queries)
    ]
    for column, (image, shown_label, role, colour) in enumerate(cells):
      axis = axes[label, column]
      axis.imshow(np.squeeze(image), cmap="gray", vmin=0.0, vmax=1.0)
      axis.set_title(f"{role} y={int(shown_label)}", fontsize=7, color=colour)
      axis.set_xticks([])
      axis.set_yticks([])
      for spine in axis.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2)
    axes[label, 0].set_ylabel(sampler.source.class_names[int(classes[label])], fontsize=6)
  figure.suptitle(title, fontsize=9)
  return figure


def _draw_sinusoid(episode, sampler, index, title):
  amplitude, phase = (float(v) for v in sampler.task_parameters(index))
  grid = np.linspace(*sampler.input_range, 200)
  figure, axis = plt.subplots(figsize=(6, 4))
  axis.plot(
    grid,
    amplitude * np.sin(grid - phase),
    color="gray",
    label=f"y = {amplitude:.2f} sin(x - {phase:.2f})",
  )
  axis.scatter(
    episode.support_x[:, 0],
    episode.support_y[:, 0],
    color=_SUPPORT_COLOUR,
    label=f"support (K={sampler.num_shots})",
    zorder=3,
  )
  axis.scatter(
    episode.query_x[:, 0],
    episode.query_y[:, 0],
    facecolors="none",
    edgecolors=_QUERY_COLOUR,
    label=f"query (Q={sampler.num_queries})",
    zorder=3,
  )
  axis.set_xlabel("x")
  axis.set_ylabel("y")
  axis.legend(fontsize=8)
  axis.set_title(title, fontsize=9)
  return figure


def main(argv):
  del argv
  splits = data_flags.class_splits()
  sampler = data_flags.make_sampler(splits, split=SPLIT.value, seed=SEED.value)
  index = EPISODE_INDEX.value
  episode = episode_lib.Episode(*(np.asarray(t) for t in sampler.episode(index)))
  title = f"{data_flags.DATASET.value} {SPLIT.value} split, seed {SEED.value}, episode {index}"
  if splits is None:
    figure = _draw_sinusoid(episode, sampler, index, title)
  else:
    title += f": {sampler.num_ways}-way {sampler.num_shots}-shot, {sampler.num_queries} queries"
    figure = _draw_classification(episode, sampler, index, title)
  figure.tight_layout()
  with files.atomic_write(OUT.value) as tmp_path:
    figure.savefig(tmp_path, dpi=100, format="png")
  print(f"wrote {OUT.value}")


if __name__ == "__main__":
  common.run(main)
