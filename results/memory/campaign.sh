#!/usr/bin/env bash
# The issue-37 campaign, run by run (results/memory/README.md's table). Each run resumes
# from its own checkpoint when rerun; a finished run (results.json at 10,000 steps) is
# only scored (experiments/memory_protocols.sh keeps reports already written).
# Usage: bash results/memory/campaign.sh [OMNIGLOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/omniglot}
configs=experiments/configs
run() {  # run NAME FLAGFILE [extra train flags...]
  local name=$1 flagfile=$2
  shift 2
  local dir=results/memory/$name
  if ! grep -qs '"num_steps": 10000' "$dir/results.json"; then
    python3 -m experiments.train --flagfile="$configs/$flagfile" --omniglot_dir="$data" \
      --workdir="$dir" "$@"
  fi
  python3 -m experiments.keep_weights_only --workdir="$dir"  # idempotent
  rm -rf "$dir/tensorboard"
  # Reports written before evaluate kept per-task scores and online digests are redone.
  python3 -c 'import glob, json, os, sys
for path in glob.glob(os.path.join(sys.argv[1], "eval*.json")):
  if os.path.basename(path).startswith("eval_kept"):
    continue  # a report per kept checkpoint: its per_task is in by_checkpoint
  report = json.load(open(path))
  if "per_task" not in report or report.get("tasks_digest") is None:
    os.remove(path)' "$dir"
  bash experiments/memory_protocols.sh "$dir" "$data"
}
run memory_first_all memory_first_maml_5w1s.flags --init_from=results/mann_key_strength_omniglot_online_5way
run memory_first_head memory_first_head_maml_5w1s.flags --init_from=results/mann_key_strength_omniglot_online_5way
run memory_first_lstm memory_first_lstm_maml_5w1s.flags --init_from=results/lstm_omniglot_online_5way
run joint joint_maml_mann_5w1s.flags
run reads_only reads_only_maml_mann_5w1s.flags
run head_only_scratch head_only_maml_mann_5w1s.flags
run maml_conv4 maml_omniglot_5w1s.flags --image_size=20 --keep_checkpoints_at=500,1000,2000,5000,10000 --num_steps=10000 --validate_every=500 --num_validation_tasks=200 --checkpoint_every=500
run joint_lstm joint_lstm_maml_5w1s.flags --keep_checkpoints_at=500,1000,2000,5000,10000
# Memory only, no MAML: the Santoro-trained MANN and LSTM (the recipes' starting points),
# their weights copied here and scored on the same few-shot tasks; with 3 inner steps at
# test they are the fine-tune control (gradient steps never meta-trained for).
reference() {  # reference NAME SOURCE_RUN
  local dir=results/memory/$1 source=$2
  if [[ ! -d "$dir/checkpoints" ]]; then
    mkdir -p "$dir"
    cp "$source/flags.json" "$source/results.json" "$dir/"
    cp -r "$source/checkpoints" "$dir/"
    python3 -m experiments.keep_weights_only --workdir="$dir"
  fi
  bash experiments/memory_protocols.sh "$dir" "$data" --protocol=few_shot --num_queries=1 \
    --algorithm=maml --inner_loss=support_replay --inner_weights=all --inner_lr=0.4 \
    --num_eval_inner_steps=3
}
reference santoro_mann results/mann_key_strength_omniglot_online_5way
reference santoro_lstm results/lstm_omniglot_online_5way
# Second seeds (seed 1), scored on the same test tasks as seed 0 (memory_protocols.sh).
run joint_seed_1 joint_maml_mann_5w1s.flags --seed=1
run joint_lstm_seed_1 joint_lstm_maml_5w1s.flags --seed=1
run memory_first_head_seed_1 memory_first_head_maml_5w1s.flags --seed=1 --init_from=results/mann_key_strength_omniglot_online_5way
run memory_first_lstm_seed_1 memory_first_lstm_maml_5w1s.flags --seed=1 --init_from=results/lstm_omniglot_online_5way
# Third seeds (seed 2) of the headline pair.
run joint_seed_2 joint_maml_mann_5w1s.flags --seed=2
run joint_lstm_seed_2 joint_lstm_maml_5w1s.flags --seed=2
# Trained on 5-way 5-shot tasks (the 1-shot recipes with --num_shots=5): does the memory
# carry a 5-shot task when trained on one? Their eval.json is the 5-shot protocol; the
# 1-shot test is scored as well.
for name in joint_5_shot joint_lstm_5_shot; do
  flagfile=joint_maml_mann_5w1s.flags
  [[ $name == joint_lstm_5_shot ]] && flagfile=joint_lstm_maml_5w1s.flags
  run $name $flagfile --num_shots=5
  if [[ ! -s results/memory/$name/eval_test_1_shot.json ]]; then
    python3 -m experiments.evaluate --workdir=results/memory/$name --omniglot_dir="$data" \
      --seed=0 --output_name=eval_test_1_shot.json --num_shots=1
  fi
done
