"""absl-flag binaries: the only code that reads flags (python -m experiments.NAME)."""

import sys

from mann import runtime

# Before any binary imports TensorFlow: TF's C++ start-up messages show with --verbosity=1.
runtime.configure_binary(sys.argv[1:])
