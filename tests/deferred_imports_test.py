"""Tests of mann/_deferred_imports.py: Keras's plotting imports wait until they are used."""

import inspect
import os
import subprocess
import sys
import textwrap

import pytest

from mann import _deferred_imports

_PACKAGE = "mann_deferral_probe"


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
  """A package whose import leaves a mark: `<tmp>/ran` gets one line per module run."""
  marks = tmp_path / "ran"
  package = tmp_path / _PACKAGE
  package.mkdir()
  for name, source in {
    "__init__.py": "VERSION = 'probe-1'\n",
    "pyplot.py": "def figure():\n  return 'figure'\n",
    "patches.py": "PATCH = 'patch'\n",
  }.items():
    module = name.removesuffix(".py")
    record = f"open({str(marks)!r}, 'a').write({module!r} + '\\n')\n"
    (package / name).write_text(record + source)
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(_deferred_imports, "DEFERRED_PACKAGES", frozenset({_PACKAGE}))
  _deferred_imports.install()
  yield marks
  for name in [n for n in sys.modules if n.partition(".")[0] == _PACKAGE]:
    del sys.modules[name]


def _run_as(module_name: str, source: str) -> dict:
  """Runs `source` as if it were the body of module `module_name`; returns its names."""
  namespace = {"__name__": module_name}
  exec(textwrap.dedent(source), namespace)  # pylint: disable=exec-used
  return namespace


def _ran(marks) -> list[str]:
  return marks.read_text().split() if marks.exists() else []


def test_keras_import_gets_a_stand_in_that_imports_on_first_use(probe_package):
  names = _run_as(
    "keras.src.probe",
    f"""
    import {_PACKAGE}.pyplot as plt
    from {_PACKAGE} import patches
    """,
  )
  assert _ran(probe_package) == []  # neither the package nor its modules ran
  assert isinstance(names["plt"], _deferred_imports.DeferredModule)
  # inspect.getmodule reads every module's __file__ (AutoGraph calls it while tracing).
  assert inspect.getmodule(_run_as) is sys.modules[__name__]
  assert names["plt"].__file__.endswith(os.path.join(_PACKAGE, "pyplot.py"))
  assert _ran(probe_package) == []
  assert names["plt"].figure() == "figure"
  assert _ran(probe_package) == ["__init__", "pyplot"]
  assert names["patches"].PATCH == "patch"
  assert _ran(probe_package) == ["__init__", "pyplot", "patches"]
  # The stand-ins left sys.modules: an import now gets the real modules, run once.
  real = _run_as("elsewhere", f"import {_PACKAGE}.pyplot as plt")["plt"]
  assert type(real) is type(sys)  # pylint: disable=unidiomatic-typecheck
  assert real.figure is names["plt"].figure
  assert _ran(probe_package) == ["__init__", "pyplot", "patches"]


def test_other_importers_get_the_real_package(probe_package):
  names = _run_as("experiments.plots", f"import {_PACKAGE}")
  assert _ran(probe_package) == ["__init__"]
  assert type(names[_PACKAGE]) is type(sys)  # pylint: disable=unidiomatic-typecheck


def test_a_package_imported_by_its_stand_in_first_is_whole(probe_package):
  _run_as("keras.src.probe", f"import {_PACKAGE}.pyplot")
  package = _run_as("experiments.plots", f"import {_PACKAGE}")[_PACKAGE]
  assert package.VERSION == "probe-1"  # the stand-in of the package answers for the real
  assert _ran(probe_package) == ["__init__"]


def test_a_missing_package_still_fails_as_keras_expects(monkeypatch):
  monkeypatch.setattr(_deferred_imports, "DEFERRED_PACKAGES", frozenset({"mann_not_installed"}))
  _deferred_imports.install()
  with pytest.raises(ImportError):
    _run_as("keras.src.probe", "import mann_not_installed.pyplot")


def _fresh_interpreter(folder, source: str, *args: str) -> str:
  """Runs `source` as a script (AutoGraph reads its functions' source) in a new Python
  with this tree importable; returns its last word."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
  script = folder / "script.py"
  script.write_text(textwrap.dedent(source))
  result = subprocess.run(
    [sys.executable, str(script), *args],
    capture_output=True,
    text=True,
    env=env,
    check=True,
    timeout=300,
  )
  return result.stdout.split()[-1]


def test_keras_after_configure_leaves_matplotlib_unimported_and_still_plots(tmp_path):
  # Control first: Keras alone imports matplotlib (so the check below can fail).
  keras_alone = "import sys, keras; print('matplotlib.ft2font' in sys.modules)"
  assert _fresh_interpreter(tmp_path, keras_alone) == "True"
  assert (
    _fresh_interpreter(
      tmp_path,
      """
      import sys
      from mann import runtime
      runtime.configure()
      import keras, numpy as np
      import tensorflow as tf
      layer = keras.layers.Dense(3)

      def forward(x):
        return layer(x) + 1

      tf.function(forward)(tf.ones([2, 2]))  # AutoGraph reads every module's __file__
      before = 'matplotlib.ft2font' in sys.modules
      images = np.random.default_rng(0).random((4, 8, 8, 3))
      keras.visualization.plot_image_gallery(images, value_range=(0, 1), path=sys.argv[1])
      print(f"{before},{'matplotlib.ft2font' in sys.modules}")
      """,
      str(tmp_path / "gallery.png"),
    )
    == "False,True"
  )
  with open(tmp_path / "gallery.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
