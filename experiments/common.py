"""What every binary shares: one-line errors for a user's bad input, and running other
experiments binaries from a driver (ablate, universality)."""

import functools
import os
import subprocess
import sys
from typing import Callable, Optional

from absl import app
from absl import flags

from mann import errors
from mann import files


def run(main: Callable[[list[str]], None]) -> None:
  """app.run(main), printing a UserInputError as one line and exiting with status 2, a
  diverged run (errors.RunDiverged) as one line with status 3, and exiting with 130 on
  a stop by the user. Any other exception is a bug and keeps its traceback.
  """
  app.run(lambda argv: run_main(main, argv), flags_parser=parse_flags)


def run_main(main: Callable[[list[str]], None], argv: list[str]) -> None:
  """main(argv) with run's exit statuses and one-line errors (flags parsed already)."""
  try:
    main(argv)
  except errors.UserInputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except errors.RunDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
  except KeyboardInterrupt:
    sys.exit(130)  # stopped by the user (Ctrl-C or SIGTERM); the trainer said where


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, a bad flag (unknown, out of bounds, not in an enum, missing)
  reported as one line with exit status 2, as every other bad input is."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e} (see --helpshort for the flags)", file=sys.stderr)
    sys.exit(2)


def library_checks(what: str):
  """Decorates a function that calls the library with flag values: a ValueError the
  library raises for them becomes one errors.UserInputError line, "WHAT: its message"
  (the library's keyword arguments carry the flags' names). The one place where that
  translation happens: binaries do not re-check what the library checks."""

  def decorate(function):
    @functools.wraps(function)
    def checked(*args, **kwargs):
      try:
        return function(*args, **kwargs)
      except errors.UserInputError:
        raise
      except ValueError as e:
        raise errors.UserInputError(f"{what}: {str(e).splitlines()[0]}") from None

    return checked

  return decorate


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(args: list[str], what: str, *, driver: str) -> None:
  """Runs `python -m ARGS` from the repository root, its output passed through.

  A stop by the user (exit 130: the binary saved a checkpoint) raises KeyboardInterrupt;
  any other failure is one UserInputError line that says to rerun the driver's command.
  """
  print(f"{driver}: {what}: python -m {' '.join(args)}", flush=True)
  result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=False)
  if result.returncode == 130:
    print(f"{driver}: {what}: stopped; rerun the same command to resume", file=sys.stderr)
    raise KeyboardInterrupt
  if result.returncode != 0:
    raise errors.UserInputError(
      f"{what} failed (exit {result.returncode}; its output is above); fix it and rerun "
      f"the same command to resume"
    )


def read_json(path: str) -> Optional[dict]:
  """The JSON object in path, or None where there is no such file; one line if it is
  not valid JSON (files.read_json)."""
  return files.read_json(path)


def require_json(path: str, *, written_by: str) -> dict:
  """The JSON object in path, which `written_by` (a binary that exited 0) wrote; one
  line if it is not there."""
  found = read_json(path)
  if found is None:
    raise errors.UserInputError(f"{path} not found: {written_by} did not write it; rerun it")
  return found


def kept_steps(values: list[str]) -> tuple[int, ...]:
  """--keep_checkpoints_at as sorted positive meta-steps, or one line that says what is
  wrong (experiments.train and experiments.ablate read the flag alike)."""
  try:
    steps = sorted({int(value) for value in values})
  except ValueError:
    steps = [0]
  if any(step < 1 for step in steps):
    raise errors.UserInputError(
      f"--keep_checkpoints_at={','.join(values)}: give positive whole meta-steps, "
      f"e.g. --keep_checkpoints_at=500,1000,2000"
    )
  return tuple(steps)


def positive_rates(flag_name: str, values: list[str]) -> list[float]:
  """A list flag's values as numbers above 0 (learning rates), or a UserInputError that
  names the flag and its value."""
  try:
    rates = [float(value) for value in values]
  except ValueError:
    rates = []
  if not rates or min(rates) <= 0:
    raise errors.UserInputError(
      f"--{flag_name}={','.join(values)}: give numbers above 0, e.g. 0.01,0.1"
    )
  return rates
