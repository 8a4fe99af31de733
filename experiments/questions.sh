#!/usr/bin/env bash
# The runs behind results/questions/README.md (the questions of issue 12), one after the
# other; each binary resumes where it stopped, so rerunning continues.
# Usage: experiments/questions.sh GRID ROOT [STEPS]
#   GRID: an experiments.ablate Omniglot 5w1s grid (its conv4_maml, conv4_transfer and
#         mann_maml runs are reused: same tasks, seed and budget)
#   ROOT: where the FOMAML, Reptile, adaptation and universality outputs go
#   STEPS: FOMAML and Reptile meta-steps (default 2000, the grid's budget; Reptile's
#          meta-step has 5 tasks of 10 shots, MAML's 32 of 1 shot)
set -euo pipefail
grid=${1:?usage: questions.sh GRID ROOT [STEPS]}
root=${2:?usage: questions.sh GRID ROOT [STEPS]}
steps=${3:-2000}
cd "$(dirname "$0")/.."
data=(--omniglot_dir=../shared/data/omniglot)
runs="$grid/seed_0"

python3 -m experiments.train --flagfile=experiments/configs/maml_omniglot_5w1s.flags \
  --algorithm=fomaml "${data[@]}" --num_steps="$steps" --workdir="$root/fomaml_omniglot_5w1s"
python3 -m experiments.evaluate --workdir="$root/fomaml_omniglot_5w1s"
python3 -m experiments.train --flagfile=experiments/configs/reptile_omniglot_5w1s.flags \
  "${data[@]}" --num_steps="$steps" --workdir="$root/reptile_omniglot_5w1s"
python3 -m experiments.evaluate --workdir="$root/reptile_omniglot_5w1s" --num_shots=1
python3 -m experiments.plot_learning_curve --workdir="$runs/conv4_maml" \
  --compare="$root/fomaml_omniglot_5w1s,$root/reptile_omniglot_5w1s" \
  --title="Omniglot 5w1s: MAML, FOMAML, Reptile" --out="$root/learning_curves.png"

python3 -m experiments.adaptation \
  --runs="maml=$runs/conv4_maml,fomaml=$root/fomaml_omniglot_5w1s,reptile=$root/reptile_omniglot_5w1s,transfer=$runs/conv4_transfer,mann_maml=$runs/mann_maml" \
  --random_init=maml --num_shots=1 --out_dir="$root/adaptation"

python3 -m experiments.universality --workdir="$root/universality" \
  --scratch_steps=100,1000 --budget_steps=5000
