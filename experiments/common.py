"""What every binary shares: one-line errors for a user's bad input, atomic writes."""

import sys
from typing import Callable

from absl import app

from mann import errors


def run(main: Callable[[list[str]], None]) -> None:
  """app.run(main), printing a UserInputError as one line and exiting with status 2.

  Any other exception is a bug and keeps its traceback.
  """

  def main_with_clear_errors(argv):
    try:
      main(argv)
    except errors.UserInputError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  app.run(main_with_clear_errors)
