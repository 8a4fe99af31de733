"""Atomic file writes: a run that fails midway leaves nothing half-written behind."""

import contextlib
import os
import tempfile
from typing import Iterator

from mann import errors


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; on success it becomes `path`, else it is removed.

  The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
  Raises UserInputError if the folder of `path` does not exist.
  """
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise errors.UserInputError(f"output folder {folder} does not exist; create it first")
  handle, tmp_path = tempfile.mkstemp(dir=folder, suffix=".tmp" + os.path.splitext(path)[1])
  os.close(handle)
  try:
    yield tmp_path
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    os.replace(tmp_path, path)
  finally:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)
