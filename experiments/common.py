"""What every binary shares: one-line errors for a user's bad input, atomic writes."""

import sys
from typing import Callable

from absl import app

from mann import errors


def run(main: Callable[[list[str]], None]) -> None:
  """app.run(main), printing a UserInputError as one line and exiting with status 2,
  and exiting with 130 on a stop by the user. Any other exception is a bug and keeps
  its traceback.
  """

  def main_with_clear_errors(argv):
    try:
      main(argv)
    except errors.UserInputError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    except KeyboardInterrupt:
      sys.exit(130)  # stopped by the user (Ctrl-C or SIGTERM); the trainer said where

  app.run(main_with_clear_errors)
