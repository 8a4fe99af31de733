"""Every flagfile in experiments/configs names real flags of the train binary with values
they accept, and opens with the command, the expected runtime and the paper's number."""

import copy
import glob
import os

from absl import flags
import pytest

from tests import conftest

CONFIGS = sorted(glob.glob(os.path.join(conftest.REPO_ROOT, "experiments/configs/*.flags")))


def _check_settings(path):
  """Each setting of the flagfile at path (and of the flagfiles it includes) parses."""
  with open(path) as f:
    settings = [line.strip() for line in f if line.strip() and not line.startswith("#")]
  assert settings
  for setting in settings:
    assert setting.startswith("--")
    name, _, value = setting[2:].partition("=")
    if name == "flagfile":  # included, relative to the repository root like the commands
      _check_settings(os.path.join(conftest.REPO_ROOT, value))
      continue
    if name not in flags.FLAGS and name.startswith("no") and not value:  # --noBOOLEAN
      assert flags.FLAGS[name[2:]].flag_type() == "bool"
      continue
    flag = copy.deepcopy(flags.FLAGS[name])  # KeyError: no such flag
    if value:
      flag.parse(value)  # raises on a value the flag rejects
    else:
      assert isinstance(flag, flags.BooleanFlag) or flag.flag_type() == "bool"


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_against_the_train_binary(path):
  import experiments.train  # noqa: F401  (defines the flags)

  with open(path) as f:
    header = "\n".join(line for line in f if line.startswith("#"))
  assert "python3 -m experiments.train --flagfile=" in header
  assert "Paper" in header and "runtime" in header
  _check_settings(path)


def test_there_are_the_papers_settings():
  names = {os.path.basename(p) for p in CONFIGS}
  assert {
    "maml_sinusoid.flags",
    "maml_omniglot_5w1s.flags",
    "maml_omniglot_5w5s.flags",
    "maml_omniglot_20w1s.flags",
    "maml_omniglot_20w5s.flags",
  } <= names
