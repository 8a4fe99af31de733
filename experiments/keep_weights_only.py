r"""Replaces a finished run's checkpoints with one holding its latest weights alone (no
optimiser state): what a finished run ships in results/.

  python -m experiments.keep_weights_only --workdir=results/memory/memory_first_all

The run can then be evaluated (experiments.evaluate) or start another
(experiments.train --init_from), not resumed. Prints the step and the sizes before and
after.
"""

import os

from absl import flags

from experiments import common
from experiments import run_folder
from mann import errors
from mann import training

WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a run made by experiments.train.")
flags.mark_flag_as_required("workdir")


def _megabytes(folder: str) -> float:
  return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file()) / 1e6


def main(argv):
  del argv
  learner, _, _, _ = run_folder.load_trained_run(WORKDIR.value, split="test")
  folder = os.path.join(WORKDIR.value, training.CHECKPOINT_FOLDER)
  before = _megabytes(folder)
  try:
    step = training.keep_weights_only(WORKDIR.value, learner)
  except FileNotFoundError as e:
    raise errors.UserInputError(f"{e}: train the run first (experiments.train)") from None
  print(
    f"{folder}: the weights of step {step} alone, {_megabytes(folder):.1f} MB (was {before:.1f} MB)"
  )


if __name__ == "__main__":
  common.run(main)
