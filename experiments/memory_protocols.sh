#!/usr/bin/env bash
# Scores one trained run on every protocol of results/memory/README.md (issue 37), each
# on 600 test tasks with its reads-zeroed control where the model has a memory:
#   eval.json                    the run's own protocol (5-way 1-shot, its test steps)
#   eval_0_steps.json            no inner step at test (what the initialisation, and for
#                                the MANN its memory, does alone)
#   eval_test_5_shot.json        5 shots at test (trained on 1)
#   eval_test_10_shot.json       10 shots at test
#   eval_online.json             sequence models only: Santoro's online protocol, 10
#                                instances of 5 classes, no gradient step
# Usage: experiments/memory_protocols.sh RUN [OMNIGLOT_DIR [EVALUATE_FLAGS...]]
# EVALUATE_FLAGS go to every call, before the protocol's own (which win), e.g. to score
# a run trained on the online protocol on few-shot tasks.
# An existing report is kept (delete it to score again). Every run is scored on the test
# tasks of --seed=0, whatever seed trained it, so that all runs pair task by task.
set -euo pipefail
run=${1:?usage: memory_protocols.sh RUN [OMNIGLOT_DIR [EVALUATE_FLAGS...]]}
data=(--omniglot_dir="${2:-../shared/data/omniglot}" --seed=0 "${@:3}")
cd "$(dirname "$0")/.."
score() {
  local name=$1
  shift
  if [[ ! -s "$run/$name" ]]; then
    python3 -m experiments.evaluate --workdir="$run" "${data[@]}" --output_name="$name" "$@"
  fi
}
score eval.json
score eval_0_steps.json --num_eval_inner_steps=0
score eval_test_5_shot.json --num_shots=5
score eval_test_10_shot.json --num_shots=10
if grep -q '"model": "\(mann\|lstm\)"' "$run/flags.json"; then
  # The sequence is read without gradient steps: MAML-only training settings are reset.
  score eval_online.json --protocol=online --algorithm=episodic --num_instances=10 \
    --inner_weights=all --pre_adaptation_loss_weight=0
fi
