"""Benchmark scripts (speed, throughput): run as python -m benchmarks.NAME; print JSON."""

import os

# TensorFlow's C++ start-up notices (CPU features, oneDNN) would bury a binary's own
# output; errors still show. Set before any binary imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mann  # noqa: F401  (sets TensorFlow's CPU options before TensorFlow loads)
