"""The exceptions binaries report as one line: a user's bad input, a diverged run."""


class UserInputError(ValueError):
  """Bad input from a user: its message is one line naming the problem and the fix.

  Binaries in experiments/ catch exactly this type and print the message alone,
  without a traceback; any other exception is a bug and keeps its traceback.
  """


class RunDiverged(RuntimeError):
  """A meta-step gave a non-finite loss or meta-gradient; the run stopped before
  applying it, and its checkpoints are the good ones from before. The message is one
  line: where it happened, what was kept, what to try.
  """
