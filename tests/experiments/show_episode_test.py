"""Tests of experiments/show_episode.py, run as a user runs it (a subprocess)."""

import os
import subprocess
import sys

from PIL import Image

from tests import conftest


def _run(*flags, cwd):
  return subprocess.run(
    [sys.executable, "-m", "experiments.show_episode", *flags],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )


def test_draws_an_omniglot_episode(tmp_path, omniglot_dir, tfds_data_dir, omniglot_characters):
  del omniglot_characters  # prepared once by the fixture; the binary reads the cache
  out = tmp_path / "episode.png"
  result = _run(
    "--dataset=omniglot",
    f"--omniglot_dir={omniglot_dir}",
    f"--data_dir={tfds_data_dir}",
    "--num_ways=5",
    "--num_shots=1",
    f"--out={out}",
    cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr
  with Image.open(out) as image:
    assert image.format == "PNG" and image.width > 300 and image.height > 300
  assert os.listdir(tmp_path) == ["episode.png"]


def test_draws_a_sinusoid_task(tmp_path):
  out = tmp_path / "sinusoid.png"
  result = _run("--dataset=sinusoid", "--num_shots=10", f"--out={out}", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  with Image.open(out) as image:
    assert image.format == "PNG"


def test_wrong_omniglot_dir_is_one_clear_line(tmp_path):
  out = tmp_path / "episode.png"
  wrong = tmp_path / "not_omniglot"
  wrong.mkdir()
  result = _run(
    "--dataset=omniglot",
    f"--omniglot_dir={wrong}",
    f"--data_dir={tmp_path}",
    f"--out={out}",
    cwd=tmp_path,
  )
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(error_lines) == 1
  assert str(wrong) in error_lines[0] and "images_background.zip" in error_lines[0]
  assert sorted(os.listdir(tmp_path)) == ["not_omniglot"]  # nothing half-written


def test_bad_flag_value_names_the_flag(tmp_path):
  result = _run("--dataset=imagenet", f"--out={tmp_path / 'x.png'}", cwd=tmp_path)
  assert result.returncode != 0
  assert "--dataset" in result.stderr and "tfds:NAME" in result.stderr
  assert not os.listdir(tmp_path)
