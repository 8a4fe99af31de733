"""mann: few-shot meta-learning with MAML-style initialisations and external memory.

Subpackages: data (episodes and sources), models (Keras backbones and the MANN),
memory, meta, training, evaluation. The library takes keyword arguments and never
reads flags; the binaries in experiments/ do.
"""

import os

# Before TensorFlow loads: its oneDNN CPU kernels are the only ones with grouped
# convolutions (the task-batched conv4), and TF turns them on for some CPUs only (not
# on AMD EPYC, where the grappler's fused Eigen convolution then rejects the groups).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Before Keras loads: its imports of matplotlib and IPython wait until they are used.
from mann import _deferred_imports  # noqa: E402  (after the environment above)

_deferred_imports.install()

# The subpackages are the public surface (imported by name: `from mann import meta`).
__all__ = [
  "data",
  "errors",
  "evaluation",
  "files",
  "machine",
  "memory",
  "meta",
  "models",
  "training",
]
