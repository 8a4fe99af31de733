"""mann: few-shot meta-learning with MAML-style initialisations and external memory.

Subpackages: data (episodes and sources), models (Keras backbones and the MANN),
memory, meta, training, evaluation. The library takes keyword arguments and never
reads flags; the binaries in experiments/ do.
"""
