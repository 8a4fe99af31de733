"""The build refuses a dependency that runs back up the layering (BUILD's visibility).

Runs a second Bazel (its own output base, under the test's temporary folder) on a copy of
the repository's build files and sources with one rogue target added, analysis only
(--nobuild). Needs Bazel: `bazel test //tests:bazel_layering_test` runs it; plain pytest
deselects it (marker `bazel`, pytest.ini).
"""

import os
import pathlib
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.bazel

# The source tree: this file's real path (under `bazel test` it is a runfiles symlink).
SOURCE_ROOT = pathlib.Path(os.path.realpath(__file__)).parents[2]
COPIED = ("BUILD", "*.bzl", "*.py", "*.flags", "WORKSPACE", "requirements.txt", "pytest.ini")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  """A copy of the build: BUILD and .bzl files, the sources they name, the stand-ins."""
  root = tmp_path_factory.mktemp("workspace")
  for path in SOURCE_ROOT.rglob("*"):
    relative = path.relative_to(SOURCE_ROOT)
    if (
      relative.parts[0] in (".bazel", ".git", "workdirs", "results")
      or not path.is_file()
      or not any(path.match(pattern) for pattern in COPIED)
    ):
      continue
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, root / relative)
  yield root
  subprocess.run([*_bazel(root), "shutdown"], cwd=root, capture_output=True, timeout=120)


def _bazel(workspace):
  """Bazel with its own output base (and server) for the copy. The system rc stays: it
  names the install base of Debian's bazel-bootstrap (/etc/bazel/bazelrc)."""
  bazel = shutil.which("bazel")
  assert bazel, "bazel not on PATH: apt-get install bazel-bootstrap (docs/guide.md, Bazel)"
  return [
    bazel,
    f"--output_base={workspace.parent / 'output_base'}",
    "--nohome_rc",
    "--noworkspace_rc",
  ]


def _analyse(workspace, package, rogue_deps):
  """Adds py_library `rogue` with rogue_deps to package's BUILD; returns Bazel's result."""
  build = workspace / package / "BUILD"
  original = build.read_text().split("\n# rogue\n")[0]
  build.write_text(
    original + '\n# rogue\npy_library(name = "rogue", deps = %r)\n' % list(rogue_deps)
  )
  return subprocess.run(
    [*_bazel(workspace), "build", "--nobuild", f"//{package}:rogue"],
    cwd=workspace,
    capture_output=True,
    text=True,
    timeout=600,
  )


@pytest.mark.parametrize(
  "package, allowed, refused",
  [
    ("mann/data", "//mann", "//mann/meta"),  # data sits below the learners
    ("mann/models", "//mann/memory", "//mann/data"),  # models never read datasets
    ("mann/meta", "//mann/models", "//mann/training"),  # learners below the trainer
    ("mann/training", "//mann/meta", "//experiments:flags"),  # the library reads no flags
  ],
)
def test_a_dependency_up_the_layers_is_not_visible(workspace, package, allowed, refused):
  result = _analyse(workspace, package, [allowed])
  assert result.returncode == 0, result.stderr[-3000:]  # the same target, a legal dep
  result = _analyse(workspace, package, [allowed, refused])
  assert result.returncode != 0
  refused_label = refused if ":" in refused else f"{refused}:{refused.split('/')[-1]}"
  assert f"target '{refused_label}' is not visible from target '//{package}:rogue'" in (
    result.stderr
  ), result.stderr[-3000:]
