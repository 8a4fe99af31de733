"""The BUILD files tell the truth: every source file is in a target, each library module in
exactly one, and each target's direct deps cover what its files import (first-party modules
and pinned requirements), its data the binaries and flagfiles its files start or read.

The BUILD and .bzl files are read here as Python (Starlark is close to a subset of it)
with the rules replaced by recorders, so the check needs no Bazel; tests/bazel/
layering_test.py is the part that does (visibility is Bazel's to enforce).
"""

import ast
import functools
import importlib.metadata
import pathlib
import re
import sys
import types

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIRST_PARTY = ("mann", "experiments", "benchmarks", "tests")
RULES = ("py_library", "py_binary", "py_test", "filegroup")


def _normalize(name: str) -> str:
  return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _pinned_requirements() -> frozenset[str]:
  names = set()
  for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
      names.add(_normalize(line.split("==")[0]))
  return frozenset(names)


class _Build:
  """All targets of the repository's BUILD files, as {label: record}."""

  def __init__(self):
    self.targets = {}
    self.exported = set()  # labels of exports_files
    for build in sorted(REPO_ROOT.glob("**/BUILD")):
      package = build.parent.relative_to(REPO_ROOT).as_posix()
      if package.split("/")[0] in FIRST_PARTY + (".",):
        self._read(build, "" if package == "." else package)

  def _label(self, package: str, label: str) -> str:
    if label.startswith("@"):
      return label
    if label.startswith(":"):
      return f"//{package}{label}"
    path, _, name = label[2:].partition(":")
    return f"//{path}:{name or path.split('/')[-1]}"

  def _namespace(self, package: str) -> dict:
    def record(kind):
      def rule(name, srcs=(), deps=(), data=(), **unused):
        del unused
        files = [src for src in srcs if not src.startswith((":", "//", "@"))]
        self.targets[f"//{package}:{name}"] = types.SimpleNamespace(
          kind=kind,
          package=package,
          srcs=[(pathlib.Path(package) / src).as_posix() for src in files],
          deps=[self._label(package, dep) for dep in deps],
          data=[self._label(package, item) for item in data],
        )

      return rule

    def glob(patterns):
      return sorted(
        path.relative_to(REPO_ROOT / package).as_posix()
        for pattern in patterns
        for path in (REPO_ROOT / package).glob(pattern)
      )

    namespace = {kind: record(kind) for kind in RULES}
    namespace.update(
      glob=glob,
      package=lambda **kwargs: None,
      exports_files=lambda names, **kw: self.exported.update(
        self._label(package, f":{name}") for name in names
      ),
      package_group=lambda **kwargs: None,
      requirement=lambda name: f"@pypi//:{_normalize(name)}",
      native=types.SimpleNamespace(package_name=lambda: package),
    )

    def load(bzl, *symbols):
      if bzl.startswith(":"):  # a first-party macro: run it with the same recorders
        macros = dict(namespace)
        exec(compile((REPO_ROOT / package / bzl[1:]).read_text(), bzl, "exec"), macros)  # pylint: disable=exec-used
        for symbol in symbols:
          namespace[symbol] = macros[symbol]

    namespace["load"] = load
    return namespace

  def _read(self, build: pathlib.Path, package: str):
    exec(compile(build.read_text(), str(build), "exec"), self._namespace(package))  # pylint: disable=exec-used

  def owners(self, path: str) -> list[str]:
    return [label for label, target in self.targets.items() if path in target.srcs]

  def closure(self, label: str) -> set[str]:
    """The label and every target its deps and data reach."""
    seen, stack = set(), [label]
    while stack:
      current = stack.pop()
      if current in seen or current not in self.targets:
        continue
      seen.add(current)
      stack.extend(self.targets[current].deps + self.targets[current].data)
    return seen


BUILD = _Build()


def _module_file(module: str):
  """The .py file of a first-party module name (a package's __init__.py), or None."""
  path = REPO_ROOT.joinpath(*module.split("."))
  for candidate in (path.with_suffix(".py"), path / "__init__.py"):
    if candidate.is_file():
      return candidate.relative_to(REPO_ROOT).as_posix()
  return None


def _imports(path: str):
  """(first-party module files, top-level third-party names, modules run by name, reads a
  flagfile) of one source file."""
  tree = ast.parse((REPO_ROOT / path).read_text())
  modules, third_party, run = set(), set(), set()
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from mann import data` imports the module mann.data, else a name of mann.
      names = [
        f"{node.module}.{alias.name}"
        if _module_file(f"{node.module}.{alias.name}")
        else node.module
        for alias in node.names
      ]
    for name in names:
      if name.split(".")[0] in FIRST_PARTY:
        modules.add(_module_file(name))
      elif name.split(".")[0] not in sys.stdlib_module_names:
        third_party.add(name.split(".")[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      if re.fullmatch(r"(experiments|benchmarks|tests)(\.\w+)+", node.value):
        run.add(_module_file(node.value))
    # `binaries.run("train", ...)`: tests/experiments/binaries.py starts experiments.train.
    if (
      isinstance(node, ast.Call)
      and node.args
      and isinstance(node.args[0], ast.Constant)
      and isinstance(node.args[0].value, str)
      and getattr(node.func, "attr", getattr(node.func, "id", "")).lstrip("_").startswith("run")
    ):
      run.add(_module_file(f"experiments.{node.args[0].value}"))
  reads_flagfile = any(
    isinstance(node, ast.Constant)
    and isinstance(node.value, str)
    and re.fullmatch(r"(--flagfile=)?experiments/configs/[\w*]+\.flags", node.value)
    or isinstance(node, ast.Call)
    and [getattr(arg, "value", None) for arg in node.args] == ["experiments", "configs"]
    for node in ast.walk(tree)
  )
  return modules - {None}, third_party, run - {None}, reads_flagfile


@functools.cache
def _import_names():
  return importlib.metadata.packages_distributions()


@functools.cache
def _distribution(import_name: str):
  """The pinned requirement an import comes from (importlib's own map), or None."""
  for distribution in _import_names().get(import_name, []):
    if _normalize(distribution) in _pinned_requirements():
      return _normalize(distribution)
  return None


def _python_files():
  for top in FIRST_PARTY:
    for path in sorted((REPO_ROOT / top).glob("**/*.py")):
      yield path.relative_to(REPO_ROOT).as_posix()


def test_the_build_files_parse_into_targets():
  kinds = {target.kind for target in BUILD.targets.values()}
  assert {"py_library", "py_binary", "py_test"} <= kinds
  assert "//mann/meta:meta" in BUILD.targets and "//experiments:train" in BUILD.targets


@pytest.mark.parametrize("path", list(_python_files()))
def test_every_python_file_is_in_a_target(path):
  owners = BUILD.owners(path)
  assert owners, f"{path} is in no BUILD target: add it to its folder's BUILD"
  if path.startswith("mann/"):
    assert len(owners) == 1, f"library module {path} is in {owners}: one target only"


def test_no_target_lists_a_label_twice():
  # Bazel refuses to load a package where one does (macros' implicit deps included).
  for label, target in BUILD.targets.items():
    for attribute in ("deps", "data"):
      labels = getattr(target, attribute)
      repeated = sorted({item for item in labels if labels.count(item) > 1})
      assert not repeated, f"{label} lists {repeated} twice in its {attribute}: remove one"


def test_every_dependency_names_a_target_or_a_pinned_requirement():
  for label, target in BUILD.targets.items():
    for dep in target.deps + target.data:
      if dep.startswith("@pypi//:"):
        assert dep.split(":")[-1] in _pinned_requirements(), (label, dep)
      else:
        assert dep in BUILD.targets or dep in BUILD.exported, (
          f"{label} depends on {dep}, which no BUILD defines"
        )
    for src in target.srcs:
      assert (REPO_ROOT / src).exists(), f"{label} lists {src}, which does not exist"


def _missing(label: str, target) -> list[str]:
  """What a target's files import, start or read that its deps and data do not provide."""
  direct = set(target.srcs)
  for dep in target.deps:
    if dep in BUILD.targets:
      direct |= set(BUILD.targets[dep].srcs)
  reachable = set(target.srcs)
  for reached in set().union(*(BUILD.closure(dep) for dep in target.deps + target.data)):
    reachable |= set(BUILD.targets[reached].srcs)
  problems = []
  for src in target.srcs:
    if not src.endswith(".py"):
      continue
    modules, third_party, run, reads_flagfile = _imports(src)
    problems += [
      f"{label}: {src} imports {module}, which is not in its srcs or a direct dep:"
      f" add {BUILD.owners(module)} to its deps"
      for module in sorted(modules - direct)
    ]
    for name in sorted(third_party):
      requirement = _distribution(name)  # None: not pinned (an optional peer, e.g. torch)
      if requirement and f"@pypi//:{requirement}" not in target.deps:
        problems.append(f"{label}: {src} imports {name}: add requirement({requirement!r})")
    problems += [
      f"{label}: {src} starts {module} as a process, which is not in its runfiles:"
      f" add {BUILD.owners(module)} to its data"
      for module in sorted(run - reachable)
    ]
    if reads_flagfile and not any(
      "//experiments:configs" in BUILD.closure(item) for item in target.data
    ):
      problems.append(
        f"{label}: {src} reads experiments/configs/: add //experiments:configs to its data"
      )
  return problems


@pytest.mark.parametrize(
  "label", sorted(label for label, target in BUILD.targets.items() if target.kind != "filegroup")
)
def test_deps_cover_imports(label):
  assert not _missing(label, BUILD.targets[label])


def test_the_check_reports_a_missing_dependency():
  """Without //mann/data and numpy in its deps, //mann/meta is reported for both."""
  meta = BUILD.targets["//mann/meta:meta"]
  stripped = types.SimpleNamespace(
    **{
      **vars(meta),
      "deps": [dep for dep in meta.deps if dep not in ("//mann/data:data", "@pypi//:numpy")],
    }
  )
  problems = "\n".join(_missing("//mann/meta:meta", stripped))
  assert "imports mann/data/episode.py" in problems
  assert "imports numpy: add requirement('numpy')" in problems


def test_the_check_reports_a_binary_missing_from_data():
  """Without its data, //experiments:ablate is reported for the binaries it starts."""
  ablate = BUILD.targets["//experiments:ablate"]
  stripped = types.SimpleNamespace(**{**vars(ablate), "data": []})
  problems = "\n".join(_missing("//experiments:ablate", stripped))
  assert "starts experiments/train.py as a process" in problems
  assert "reads experiments/configs/" in problems
