"""mann: few-shot meta-learning with MAML-style initialisations and external memory.

Subpackages: data (episodes and sources), models (Keras backbones and the MANN),
memory, meta, training, evaluation, analysis. The library takes keyword arguments and never
reads flags; the binaries in experiments/ do. Importing it changes nothing in the
process: a program calls mann.runtime.configure() first (mann/runtime.py).
"""

# The subpackages are the public surface (imported by name: `from mann import meta`).
__all__ = [
  "analysis",
  "data",
  "errors",
  "evaluation",
  "files",
  "machine",
  "memory",
  "meta",
  "models",
  "runtime",
  "training",
]
