"""The one exception type for a user's bad input (paths, files, sizes, names)."""


class UserInputError(ValueError):
  """Bad input from a user: its message is one line naming the problem and the fix.

  Binaries in experiments/ catch exactly this type and print the message alone,
  without a traceback; any other exception is a bug and keeps its traceback.
  """
