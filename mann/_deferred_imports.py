"""Keras's imports of plotting and notebook packages, deferred until they are used.

Keras imports `matplotlib.pyplot` (keras.src.visualization) and `IPython`
(keras.src.saving.file_editor) at import time when they are installed, for functions
this project never calls at start-up: 0.45 s and 0.64 s of every binary's start on a
2-core CPU, a tenth of the time to a first meta-step (`python -X importtime`,
results/startup/README.md). A finder placed at the front of `sys.meta_path` answers
those imports, when Keras makes them, with a stand-in module; the real package is
imported on the stand-in's first attribute access, and the stand-ins then leave
`sys.modules`, so every other import of these packages, before or after, gets the real
ones. A package that is not installed still raises ImportError at Keras's import, as
Keras expects.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from typing import Optional, Sequence

# Top-level packages deferred, and the modules whose imports of them are deferred.
DEFERRED_PACKAGES = frozenset({"matplotlib", "IPython"})
DEFERRING_IMPORTERS = ("keras.",)

_FROZEN_IMPORTLIB = ("<frozen importlib._bootstrap", "importlib/_bootstrap")


class DeferredModule(types.ModuleType):
  """A stand-in for a module: the real one is imported on the first attribute access."""

  def __getattr__(self, attribute: str):
    # The import system probes a new module's attributes (__path__, __file__, ... while
    # it sets them up) and a package's for `from package import name`, importing
    # `package.name` when the probe fails: answering a probe would import the package.
    if sys._getframe(1).f_code.co_filename.startswith(_FROZEN_IMPORTLIB):
      raise AttributeError(attribute)
    return getattr(_materialize(self.__name__), attribute)


_lock = threading.RLock()


def _materialize(name: str) -> types.ModuleType:
  """Imports the real module `name`, after the stand-ins of its package leave sys.modules."""
  with _lock:
    current = sys.modules.get(name)
    if current is not None and not isinstance(current, DeferredModule):
      return current
    package = name.partition(".")[0]
    for module_name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
      if isinstance(sys.modules[module_name], DeferredModule):
        del sys.modules[module_name]
    return importlib.import_module(name)


class _DeferringLoader(importlib.abc.Loader):
  def create_module(self, spec):
    return DeferredModule(spec.name)

  def exec_module(self, module):
    del module  # nothing runs until the module is used


def _importer_name() -> str:
  """`__name__` of the module whose import statement is being resolved."""
  frame: Optional[types.FrameType] = sys._getframe(2)
  while frame is not None and frame.f_code.co_filename.startswith(_FROZEN_IMPORTLIB):
    frame = frame.f_back
  return "" if frame is None else str(frame.f_globals.get("__name__", ""))


class DeferringFinder(importlib.abc.MetaPathFinder):
  """Answers Keras's imports of DEFERRED_PACKAGES with stand-ins (DeferredModule)."""

  def find_spec(
    self, fullname: str, path: Optional[Sequence[str]], target=None
  ) -> Optional[importlib.machinery.ModuleSpec]:
    del target
    if fullname.partition(".")[0] not in DEFERRED_PACKAGES:
      return None
    if not _importer_name().startswith(DEFERRING_IMPORTERS):
      return None
    # Only a file-system search: finds whether the module exists without running it.
    real = importlib.machinery.PathFinder.find_spec(fullname, path)
    if real is None:
      return None
    spec = importlib.machinery.ModuleSpec(
      fullname,
      _DeferringLoader(),
      origin=real.origin,
      is_package=real.submodule_search_locations is not None,
    )
    # The stand-in gets the real __file__: inspect.getmodule (AutoGraph calls it while
    # tracing) reads every module's __file__, which must not import the package.
    spec.has_location = real.has_location
    if real.submodule_search_locations is not None:
      spec.submodule_search_locations = list(real.submodule_search_locations)
    return spec


def install() -> None:
  """Puts the finder first on sys.meta_path, once; call before Keras is imported."""
  if not any(isinstance(finder, DeferringFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, DeferringFinder())
