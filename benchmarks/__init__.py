"""Benchmark scripts (speed, throughput): run as python -m benchmarks.NAME; print JSON."""

import sys

from mann import runtime

# Before any binary imports TensorFlow: TF's C++ start-up messages show with --verbosity=1.
runtime.configure_binary(sys.argv[1:])
