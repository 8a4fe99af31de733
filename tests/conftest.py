"""Shared fixtures: the real Omniglot zips, prepared once per machine through TFDS."""

import fcntl
import os
import pathlib
import sys

import pytest

# Not resolved through symlinks: under `bazel test` this is the test's runfiles tree, which
# holds only the files its target declares (BUILD), and the binaries run from there.
REPO_ROOT = pathlib.Path(os.path.abspath(__file__)).parents[1]
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

from mann import runtime  # noqa: E402  (after the path above)

runtime.configure()  # before any test imports TensorFlow, as the binaries do

# Two logical CPU devices in every test process, before TensorFlow initialises them, so
# that multi-replica strategies run here (tests/training/distribute_test.py). Ops are
# placed on the first unless a strategy says otherwise.
NUM_TEST_CPU_DEVICES = 2


def pytest_configure(config):
  del config
  from mann.training import distribute  # pylint: disable=g-import-not-at-top

  distribute.split_cpu(NUM_TEST_CPU_DEVICES)


@pytest.fixture(scope="session")
def omniglot_dir() -> str:
  """The Omniglot zips: $MANN_OMNIGLOT_DIR, else ../shared/data/omniglot beside the repo."""
  # Beside the source tree, found through this file's real path (under `bazel test` the
  # repository root above is the runfiles tree).
  source_root = pathlib.Path(os.path.realpath(__file__)).parents[1]
  path = os.environ.get("MANN_OMNIGLOT_DIR", str(source_root.parent / "shared/data/omniglot"))
  assert os.path.isdir(path), (
    f"Omniglot zips not found at {path}: set MANN_OMNIGLOT_DIR to the folder that holds "
    f"images_background.zip and images_evaluation.zip"
  )
  return path


def _load_omniglot(omniglot_dir: str, data_dir: str):
  """All 1623 characters through the local TFDS builder, prepared in data_dir under a
  lock: the test workers (pytest -n, one process each) share the folder, and only the
  first may prepare it."""
  from mann.data import omniglot  # pylint: disable=g-import-not-at-top

  with open(os.path.join(data_dir, ".prepare.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    return omniglot.load_omniglot(data_dir=data_dir, omniglot_dir=omniglot_dir)


@pytest.fixture(scope="session")
def tfds_data_dir(omniglot_dir) -> str:
  """A TFDS data_dir kept between test runs ($MANN_TEST_DATA_DIR or ~/.cache/mann/tfds),
  with Omniglot prepared and decoded in it (once per machine), so that the binaries a
  test runs read it and never prepare it themselves."""
  path = os.environ.get("MANN_TEST_DATA_DIR", os.path.expanduser("~/.cache/mann/tfds"))
  os.makedirs(path, exist_ok=True)
  _load_omniglot(omniglot_dir, path)
  return path


# The image of images_background.zip, in name order, that omniglot_dir_with_a_bad_member
# breaks.
BAD_MEMBER_INDEX = 3


@pytest.fixture(scope="session")
def omniglot_dir_with_a_bad_member(omniglot_dir, tmp_path_factory) -> str:
  """A copy of the Omniglot zips in which four bytes of one image's compressed data
  (images_background.zip's BAD_MEMBER_INDEX-th PNG by name) are inverted: the zip's
  directory reads, that member fails its CRC."""
  import shutil  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  import zipfile  # pylint: disable=g-import-not-at-top

  from mann.data import omniglot  # pylint: disable=g-import-not-at-top

  folder = tmp_path_factory.mktemp("omniglot_bad_member")
  for name, path in omniglot.find_omniglot_zips(omniglot_dir).items():
    shutil.copyfile(path, folder / name)
  path = folder / "images_background.zip"
  with zipfile.ZipFile(path) as archive:
    names = sorted(n for n in archive.namelist() if n.endswith(".png"))
    info = archive.getinfo(names[BAD_MEMBER_INDEX])
  with open(path, "r+b") as f:
    f.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
    name_length, extra_length = struct.unpack("<HH", f.read(4))
    middle = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    f.seek(middle)
    inverted = bytes(b ^ 0xFF for b in f.read(4))
    f.seek(middle)
    f.write(inverted)
  return str(folder)


@pytest.fixture(scope="session")
def omniglot_characters(omniglot_dir, tfds_data_dir):
  """All 1623 characters, loaded offline from the zips through the local TFDS builder."""
  return _load_omniglot(omniglot_dir, tfds_data_dir)


@pytest.fixture
def float64():
  """Keras models built in float64 (floatx and the dtype policy: a policy another test set
  would otherwise win over floatx), float32 again afterwards."""
  import keras  # pylint: disable=g-import-not-at-top

  keras.config.set_floatx("float64")
  keras.config.set_dtype_policy("float64")
  yield
  keras.config.set_floatx("float32")
  keras.config.set_dtype_policy("float32")
