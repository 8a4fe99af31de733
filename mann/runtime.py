"""The process settings a mann program makes, explicitly, before TensorFlow loads.

`import mann` changes nothing in the process. A program (the binaries in experiments/
and benchmarks/, the test harness) calls `configure()` first, before anything imports
TensorFlow or Keras:

    from mann import runtime
    runtime.configure()
    from mann import meta  # ... then the rest
"""

import contextlib
import os
import sys
import tempfile
import threading
from typing import Sequence
import warnings

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"

_lock = threading.Lock()
_configured = False


@contextlib.contextmanager
def _stderr_held(show: bool):
  """Holds what is written to file descriptor 2 (C++ logging included) inside the block;
  replays it if `show` or the block raises."""
  if show:
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      if failed:
        held.seek(0)
        sys.stderr.buffer.write(held.read())
        sys.stderr.flush()


def _turn_off_grappler_memory_optimizer() -> None:
  """Turns off Grappler's memory optimiser for this process's tf.functions.

  Where it estimates a graph's peak memory above 80% of the device's, that pass
  rewrites AddN ops of more than two inputs into a TemporaryVariable accumulated in
  place; inside the gradient of a tf.while_loop (inner_loop.adapt_to_end's second-order
  steps) such a variable outlives its loop iteration, and the function's next call
  fails with "AlreadyExistsError: Resource __per_step_0/.../AddN_6/tmp_var" (the 20-way
  1-shot meta-step; tensorflow/tensorflow#25540). TensorFlow offers no public switch for
  it (tf.config.optimizer lists the other optimisers), so the context's base config
  carries it; functions read that config when their call options are next built.
  """
  from tensorflow.core.protobuf import config_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import rewriter_config_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top

  ctx = context.context()
  config = config_pb2.ConfigProto()
  if ctx._config is not None:  # pylint: disable=protected-access
    config.CopyFrom(ctx._config)  # pylint: disable=protected-access
  config.graph_options.rewrite_options.memory_optimization = (
    rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
  )
  ctx._config = config  # pylint: disable=protected-access
  ctx._thread_local_data.function_call_options = None  # pylint: disable=protected-access


def debug_verbosity_asked(argv: Sequence[str]) -> bool:
  """Whether an absl command line asks for debug logging (--verbosity or -v of 1 or
  more), read before absl parses it: TF's start-up messages come before that."""
  for position, argument in enumerate(argv):
    name, equals, value = argument.partition("=")
    if name not in ("--verbosity", "-v"):
      continue
    if not equals:
      value = argv[position + 1] if position + 1 < len(argv) else ""
    try:
      return int(value) >= 1
    except ValueError:
      return False  # absl reports the bad value when it parses
  return False


def configure_binary(argv: Sequence[str]) -> None:
  """configure() for an absl binary with command line argv (sys.argv[1:]): TF's C++
  start-up messages show when it asks for --verbosity=1 or more."""
  configure(show_tensorflow_messages=debug_verbosity_asked(argv))


def configure(*, show_tensorflow_messages: bool = False, defer_plotting_imports: bool = True):
  """Sets this process up for mann; a second call does nothing.

  - TF_ENABLE_ONEDNN_OPTS=1, unless the environment sets it: oneDNN's CPU kernels are
    TF's only grouped-convolution gradients (the task-batched engine), and TF turns
    them on for some CPUs only. Without them the engine runs one convolution per task
    (mann.models.grouped_convolution).
  - TF_CPP_MIN_LOG_LEVEL=2 (C++ errors only after the start), 0 with
    show_tensorflow_messages, unless the environment sets it.
  - With defer_plotting_imports, Keras's imports of matplotlib and IPython wait until
    they are used (mann._deferred_imports; about 1 s of each start on 2 cores).
  - TensorFlow is imported and its devices listed with TF's C++ start-up messages held
    back (the cudart stub, cuInit on a machine without a GPU, the oneDNN and CPU-feature
    notices), unless show_tensorflow_messages; they are printed if the import fails.
  - Grappler's memory optimiser is turned off (see _turn_off_grappler_memory_optimizer).

  Called after TensorFlow was imported, it warns that the first four no longer apply
  and does the last.
  """
  global _configured
  with _lock:
    if _configured:
      return
    _configured = True
    if "tensorflow" in sys.modules:
      warnings.warn(
        "mann.runtime.configure() ran after TensorFlow was imported, so its oneDNN "
        "setting and quiet start no longer apply: call it before importing TensorFlow",
        stacklevel=2,
      )
    else:
      os.environ.setdefault(ONEDNN_ENV, "1")
      os.environ.setdefault(LOG_LEVEL_ENV, "0" if show_tensorflow_messages else "2")
      if defer_plotting_imports:
        from mann import _deferred_imports  # pylint: disable=g-import-not-at-top

        _deferred_imports.install()
      with _stderr_held(show_tensorflow_messages):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        tf.config.list_physical_devices()
    _turn_off_grappler_memory_optimizer()
