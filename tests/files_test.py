"""Tests of mann/files.py: atomic writes, strict JSON."""

import json
import os
import stat

import numpy as np
import pytest

from mann import errors
from mann import files


def test_success_moves_the_file_into_place_with_normal_permissions(tmp_path):
  target = tmp_path / "out.json"
  old_umask = os.umask(0o022)
  try:
    with files.atomic_write(str(target)) as tmp:
      with open(tmp, "w") as f:
        f.write("{}")
      assert not target.exists()  # nothing at the final path until the write is done
  finally:
    os.umask(old_umask)
  assert target.read_text() == "{}"
  assert stat.S_IMODE(target.stat().st_mode) == 0o644
  assert os.listdir(tmp_path) == ["out.json"]


def test_failure_leaves_nothing_behind(tmp_path):
  with pytest.raises(RuntimeError):
    with files.atomic_write(str(tmp_path / "out.png")) as tmp:
      with open(tmp, "w") as f:
        f.write("half")
      raise RuntimeError("interrupted")
  assert not os.listdir(tmp_path)


def test_missing_folder_is_a_user_error(tmp_path):
  with pytest.raises(errors.UserInputError, match="does not exist; create it first"):
    with files.atomic_write(str(tmp_path / "no" / "out.png")):
      pass


def test_write_json_is_strict_json_with_null_for_non_finite_numbers(tmp_path):
  value = {
    "loss": float("nan"),
    "steps": np.int64(3),
    "by_step": [1.5, float("inf"), np.float32(0.25)],
    "nested": {"bad": -float("inf"), "ok": (True, None, "x")},
  }
  path = tmp_path / "out.json"
  files.write_json(str(path), value)

  def refuse(constant):
    raise AssertionError(f"non-strict JSON constant {constant}")

  read = json.loads(path.read_text(), parse_constant=refuse)
  assert read == {
    "loss": None,
    "steps": 3,
    "by_step": [1.5, None, 0.25],
    "nested": {"bad": None, "ok": [True, None, "x"]},
  }
  assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_of_an_unserialisable_value_writes_nothing(tmp_path):
  with pytest.raises(TypeError):
    files.write_json(str(tmp_path / "out.json"), {"model": object()})
  assert os.listdir(tmp_path) == []
