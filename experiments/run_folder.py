"""A run's folder as the binaries see it: the run's flags saved with it (flags.json),
checked when it resumes, restored when it is evaluated, and a trained run loaded back."""

import contextlib
import os

from absl import flags

from experiments import builders
from experiments import data_flags
from experiments import run_flags
from mann import errors
from mann import files
from mann import training
from mann.data import augment

# Flags that define a run; train.py saves them, evaluate.py restores them.
RUN_FLAG_MODULES = ("experiments.data_flags", "experiments.run_flags")
FLAGS_FILE = "flags.json"
# Run flags a resumed or evaluated run may change: the step budget, and where the data lie
# (not what they are), so a workdir moves between machines; flags.json holds the latest.
# The divergence guards too, so that a run stopped by a non-finite step resumes with them.
FLAGS_FREE_ACROSS_RESUMES = (
  "num_steps",
  "init_from",  # read at the first start only
  "data_dir",
  "omniglot_dir",
  "clip_grad_norm",
  "skip_nonfinite",
  "max_skipped_fraction",
)


def _read_flags(path: str):
  """The {flag: value} saved in a run's flags.json, or None where there is none."""
  saved = files.read_json(path)
  if saved is not None and not isinstance(saved, dict):
    raise errors.UserInputError(
      f"{path} holds no {{flag: value}} object; restore it from a copy, or retrain in a "
      f"new --workdir"
    )
  return saved


def run_flag_values() -> dict:
  """{flag name: value} of every flag that defines the run."""
  values = {}
  for module in RUN_FLAG_MODULES:
    for flag in flags.FLAGS.get_flags_for_module(module):
      values[flag.name] = flag.value
  return values


# What a run's folder holds, by kind: a file or a folder where the other belongs stops a
# start with one line, before anything is written.
_RUN_FILES = (FLAGS_FILE, training.LOG_FILE, training.RESULTS_FILE)
_RUN_FOLDERS = (training.CHECKPOINT_FOLDER, training.KEPT_FOLDER, training.TENSORBOARD_FOLDER)


def check_layout(workdir: str) -> None:
  """Refuses (one line) a workdir that is a file, or that holds a file where the run keeps
  a folder or a folder where it writes a file; reads only."""
  if os.path.lexists(workdir) and not os.path.isdir(workdir):
    raise errors.UserInputError(f"--workdir={workdir} is a file; give a folder (made if missing)")
  for name in _RUN_FOLDERS:
    path = os.path.join(workdir, name)
    if os.path.lexists(path) and not os.path.isdir(path):
      raise errors.UserInputError(
        f"{path} is a file where the run keeps its {name}/ folder; move it away, or use "
        f"a new --workdir"
      )
  for name in _RUN_FILES:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      raise errors.UserInputError(
        f"{path} is a folder where the run writes its {name}; move it away, or use a new --workdir"
      )


def check_run_flags(workdir: str) -> None:
  """Refuses (one line) a workdir whose run cannot go on with these flags: one with
  other settings, or one already past --num_steps; reads only. A workdir with no
  checkpoint (a first start that failed before saving one) takes any flags: nothing
  of it would be resumed."""
  check_layout(workdir)
  saved = _read_flags(os.path.join(workdir, FLAGS_FILE))
  if saved is None or not training.has_checkpoint(workdir):
    return
  at_step = training.latest_step(workdir)
  if at_step is None:
    raise errors.UserInputError(
      f"every checkpoint of the run is unreadable (in {workdir}); restore the files, or "
      f"start the run afresh in a new --workdir"
    )
  num_steps = run_flags.NUM_STEPS.value
  if at_step > num_steps:
    raise errors.UserInputError(
      f"the run in {workdir} is already at step {at_step}, past --num_steps={num_steps}; "
      f"give --num_steps={at_step} or more to go on, or use a new --workdir"
    )
  values = run_flag_values()
  changed = sorted(
    k for k in values if k in saved and saved[k] != values[k] and k not in FLAGS_FREE_ACROSS_RESUMES
  )
  if changed:
    raise errors.UserInputError(
      f"workdir {workdir} holds a run with other settings ({', '.join(changed)}); "
      f"use a new --workdir, or the same flags to resume it"
    )


def _unwritable(workdir: str, e: OSError) -> errors.UserInputError:
  return errors.UserInputError(
    f"cannot write to --workdir={workdir} ({e.strerror}); choose a folder you can write to"
  )


def hold_workdir(workdir: str) -> contextlib.AbstractContextManager:
  """Makes workdir (if missing) and returns its lock (training.hold_workdir), which
  refuses a second trainer there. Take it once the data and model are known to be good,
  so that a failed first start leaves nothing behind."""
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise _unwritable(workdir, e) from None
  return training.hold_workdir(workdir)


def save_run_flags(workdir: str) -> None:
  """Writes the run's flags to workdir (which hold_workdir made); refuses a workdir of a
  different run."""
  check_run_flags(workdir)
  try:
    files.write_json(os.path.join(workdir, FLAGS_FILE), run_flag_values(), sort_keys=True)
  except OSError as e:
    raise _unwritable(workdir, e) from None


def restore_run_flags(workdir: str) -> dict:
  """Sets every run flag not given on the command line to the value saved in workdir.

  Returns the overrides: {name: value} of the saved flags given on the command line with
  another value (e.g. {"zero_reads": True}), for the report to say how it differs from
  the run.
  """
  path = os.path.join(workdir, FLAGS_FILE)
  saved = _read_flags(path)
  if saved is None:
    raise errors.UserInputError(
      f"{path} not found: --workdir must be the folder of a run made by experiments.train"
    )
  overrides = {}
  for name, value in saved.items():
    if name not in flags.FLAGS:
      continue
    if not flags.FLAGS[name].present:
      flags.FLAGS[name].value = value
    elif flags.FLAGS[name].value != value and name not in FLAGS_FREE_ACROSS_RESUMES:
      overrides[name] = flags.FLAGS[name].value
  # A flag newer than the run: the run had its default; given otherwise, it overrides.
  for name, value in run_flag_values().items():
    flag = flags.FLAGS[name]
    if (
      name not in saved
      and flag.present
      and value != flag.default
      and name not in FLAGS_FREE_ACROSS_RESUMES
    ):
      overrides[name] = value
  return overrides


def load_trained_run(
  workdir: str, *, split: str, distortion: augment.Augmentation = augment.Augmentation()
):
  """A trained run as it was trained: its flags (those given on the command line win),
  the sampler of `split` (its images distorted by `distortion`), the learner with its
  latest checkpoint.

  Returns (learner, sampler, checkpoint_step, overrides); overrides as restore_run_flags.
  """
  check_layout(workdir)
  overrides = restore_run_flags(workdir)
  run_flags.check_combination()
  splits = data_flags.class_splits()
  sampler = builders.make_sampler(splits, split=split, distortion=distortion)
  learner = builders.make_learner(builders.make_model(sampler), splits)
  try:
    checkpoint_step = training.restore_latest(workdir, learner)
  except FileNotFoundError as e:
    raise errors.UserInputError(f"{e}: train the run first (experiments.train)") from None
  except errors.UserInputError:  # an unreadable checkpoint, named
    raise
  except (ValueError, AssertionError) as e:  # weights of other shapes, or missing ones
    given = ", ".join(f"--{k}" for k in overrides) or "none"
    raise errors.UserInputError(
      f"the checkpoint in {workdir} does not fit the model these flags build "
      f"({str(e).splitlines()[0][:160]}); flags given that differ from the run's: "
      f"{given}; drop those that change the model or the episode shapes"
    ) from None
  nonfinite = training.nonfinite_variables(learner)
  if nonfinite:
    shown = ", ".join(nonfinite[:3]) + (
      f" and {len(nonfinite) - 3} more" if len(nonfinite) > 3 else ""
    )
    raise errors.UserInputError(
      f"the checkpoint of {workdir} (step {checkpoint_step}) holds NaN or infinite values "
      f"in {shown}: the run diverged; retrain it with a lower --inner_lr or --outer_lr, or "
      f"with --clip_grad_norm"
    )
  return learner, sampler, checkpoint_step, overrides


def init_model_from(run_dir: str, model) -> int:
  """Sets `model`'s weights to those of the latest checkpoint of the run in run_dir
  (--init_from), after checking that the run built the same model; returns that
  checkpoint's step. Reads only: a refusal leaves nothing written."""
  path = os.path.join(run_dir, FLAGS_FILE)
  saved = _read_flags(path)
  if saved is None:
    raise errors.UserInputError(
      f"--init_from={run_dir}: {path} not found; it must be the folder of a run made by "
      f"experiments.train"
    )
  values = run_flag_values()
  text = lambda v: ",".join(map(str, v)) if isinstance(v, list) else str(v)
  differ = [
    f"--{name}={text(saved[name])} there, {text(values[name])} here"
    for name in run_flags.ARCHITECTURE_FLAGS
    if name in saved and saved[name] != values[name]
  ]
  if differ:
    raise errors.UserInputError(
      f"--init_from={run_dir} holds another model ({'; '.join(differ)}); give this run "
      f"the same model flags, or start it without --init_from"
    )
  try:
    return training.restore_model_weights(run_dir, model)
  except FileNotFoundError as e:
    raise errors.UserInputError(f"--init_from={run_dir}: {e}; train that run first") from None
  except errors.UserInputError:  # an unreadable checkpoint, named
    raise
  except (ValueError, AssertionError) as e:
    raise errors.UserInputError(
      f"--init_from={run_dir}: its checkpoint does not fit this model "
      f"({str(e).splitlines()[0][:160]})"
    ) from None
