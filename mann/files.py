"""Atomic file writes: a run that fails midway leaves nothing half-written behind."""

import contextlib
import json
import math
import numbers
import os
import tempfile
from typing import Any, Iterator

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


def json_safe(value: Any) -> Any:
  """`value` with every non-finite number (nan, inf: strict JSON has neither) as None, and
  numpy scalars as Python numbers, through dicts, lists and tuples."""
  if isinstance(value, dict):
    return {key: json_safe(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(item) for item in value]
  if isinstance(value, bool) or value is None or isinstance(value, str):
    return value
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return float(value) if math.isfinite(value) else None
  return value


def write_json(path: str, value: Any, *, sort_keys: bool = False) -> None:
  """Writes `value` to `path` as strict, indented JSON (non-finite numbers as null),
  whole or not at all."""
  text = json.dumps(json_safe(value), indent=1, sort_keys=sort_keys, allow_nan=False)
  with atomic_write(path) as tmp_path, open(tmp_path, "w") as f:
    f.write(text + "\n")


def read_json(path: str) -> Any:
  """The JSON value in `path`, or None where there is no such file.

  Raises:
    errors.UserInputError: the file is not valid JSON, or `path` is a folder (one line
      naming the file: a torn copy, an edit by hand).
  """
  if not os.path.lexists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise errors.UserInputError(
      f"{path} is not valid JSON ({e.msg} at line {e.lineno}); restore it from a copy, or "
      f"rerun what wrote it in a new folder"
    ) from None
  except (IsADirectoryError, UnicodeDecodeError) as e:
    what = "a folder" if isinstance(e, IsADirectoryError) else "not text"
    raise errors.UserInputError(
      f"{path} is {what}, where a JSON file belongs; move it away and rerun"
    ) from None
