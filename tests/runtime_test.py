"""mann/runtime.py: importing mann changes nothing; configure() makes the process's settings,
and a binary's start on a CPU machine is quiet."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from mann import runtime
from tests import conftest

# The environment a user's shell gives: none of the variables configure() sets.
_CLEAN_ENV = {
  key: value
  for key, value in os.environ.items()
  if key not in (runtime.ONEDNN_ENV, runtime.LOG_LEVEL_ENV)
} | {"PYTHONPATH": str(conftest.REPO_ROOT)}

# A line of TF's C++ logging: severity, date or zeros, time, thread, then `file.cc:line]`.
_CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w/.-]+\.cc:\d+\]", re.MULTILINE)

_PROCESS_STATE = """
import json, os, sys
{setup}
finder_names = lambda: [f"{{type(f).__module__}}.{{type(f).__name__}}" for f in sys.meta_path]
before = (dict(os.environ), finder_names())
{imports}
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context
config = config_pb2.ConfigProto.FromString(
  context.context().function_call_options.config_proto_serialized
)
after = (dict(os.environ), finder_names())
print(json.dumps({{
  "environment_added": sorted(set(after[0]) - set(before[0])),
  "environment_changed": sorted(k for k in before[0] if after[0].get(k) != before[0][k]),
  "finders_added": sorted(set(after[1]) - set(before[1])),
  "memory_optimizer_off": config.graph_options.rewrite_options.memory_optimization
    == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT,
}}))
"""
# The third-party packages mann imports: what their imports change is not mann's doing.
_DEPENDENCIES = "import absl.flags, keras, numpy, tensorflow, tensorflow_datasets"


def _run_clean(*arguments: str) -> subprocess.CompletedProcess:
  """python3 ARGUMENTS from the repository root in _CLEAN_ENV, asserting it succeeded."""
  result = subprocess.run(
    [sys.executable, *arguments],
    cwd=conftest.REPO_ROOT,
    env=_CLEAN_ENV,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _process_state(*, setup: str, imports: str) -> dict:
  source = _PROCESS_STATE.format(setup=setup, imports=imports)
  return json.loads(_run_clean("-c", source).stdout.splitlines()[-1])


def test_importing_mann_and_its_subpackages_changes_nothing_in_the_process():
  state = _process_state(
    setup=_DEPENDENCIES,
    imports="import mann; from mann import data, evaluation, memory, meta, models, training",
  )
  assert state == {
    "environment_added": [],
    "environment_changed": [],
    "finders_added": [],
    "memory_optimizer_off": False,
  }


def test_configure_makes_the_settings_it_names():
  # The control for the test above: the same probe sees each of configure()'s changes.
  state = _process_state(
    setup="", imports="from mann import runtime; runtime.configure(); from mann import meta"
  )
  assert state["environment_added"] == sorted([runtime.LOG_LEVEL_ENV, runtime.ONEDNN_ENV])
  assert "mann._deferred_imports.DeferringFinder" in state["finders_added"]
  assert state["memory_optimizer_off"]


def test_configure_after_tensorflow_warns_and_still_turns_off_the_memory_optimizer():
  state = _process_state(
    setup=_DEPENDENCIES,
    imports=textwrap.dedent("""
      import warnings
      from mann import runtime
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime.configure()
      assert "before importing TensorFlow" in str(caught[0].message), caught
    """),
  )
  assert state["memory_optimizer_off"]
  assert state["environment_added"] == [] and state["finders_added"] == []


@pytest.mark.parametrize(
  "argv, asked",
  [
    ([], False),
    (["--verbosity=1"], True),
    (["--verbosity", "2"], True),
    (["-v=1"], True),
    (["-v", "0"], False),
    (["--verbosity=-1"], False),
    (["--verbosity=debug"], False),
    (["--verbosity"], False),
    (["--num_steps=1", "--verbosity=1"], True),
  ],
)
def test_debug_verbosity_is_read_as_absl_reads_it(argv, asked):
  assert runtime.debug_verbosity_asked(argv) is asked


def _train_sinusoid(tmp_path, *flags) -> str:
  return _run_clean(
    "-m",
    "experiments.train",
    "--flagfile=experiments/configs/maml_sinusoid.flags",
    "--num_steps=2",
    "--num_validation_tasks=4",
    f"--workdir={tmp_path / 'run'}",
    *flags,
  ).stderr


def test_a_binary_starts_without_tensorflow_s_cpp_messages_unless_asked(tmp_path):
  quiet = _train_sinusoid(tmp_path)
  assert not _CPP_LOG_LINE.search(quiet), quiet
  assert "absl::InitializeLog" not in quiet and "while_loop for converting" not in quiet
  # The control: asked for, they are there (the oneDNN notice comes on every x86 CPU).
  shown = _train_sinusoid(tmp_path / "verbose", "--verbosity=1")
  assert _CPP_LOG_LINE.search(shown), shown
