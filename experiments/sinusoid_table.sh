#!/usr/bin/env bash
# Trains and evaluates the sinusoid table: MAML, FOMAML, Reptile and the pretrained
# (transfer) baseline, each at K=5 and K=10, with the MAML paper's settings
# (experiments/configs/maml_sinusoid.flags), on one CPU thread each, one after the other.
# Usage: experiments/sinusoid_table.sh WORKDIR_ROOT [NUM_STEPS]   (default 70000 steps)
set -euo pipefail
root=${1:?usage: sinusoid_table.sh WORKDIR_ROOT [NUM_STEPS]}
steps=${2:-70000}
cd "$(dirname "$0")/.."
for shots in 10 5; do
  for algorithm in maml fomaml reptile transfer; do
    extra=()
    if [ "$algorithm" = reptile ]; then extra=(--num_inner_steps=5); fi
    workdir="$root/${algorithm}_k${shots}"
    python3 -m experiments.train --flagfile=experiments/configs/maml_sinusoid.flags \
      --algorithm="$algorithm" --num_shots="$shots" --num_queries="$shots" \
      --num_steps="$steps" --num_threads=1 --workdir="$workdir" "${extra[@]}"
    # 600 test tasks, 100 query points each: the MSE of the whole curve on [-5, 5].
    python3 -m experiments.evaluate --workdir="$workdir" --num_queries=100
  done
done
