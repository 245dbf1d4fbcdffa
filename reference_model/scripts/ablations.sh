#!/usr/bin/env bash
# The paper's ablations at one equal budget: every variant fine-tunes from the same
# base checkpoint for the same steps on the same data, with three seeds, then all are
# scored on the same held-out set. B4 is B2's weights with refinement at test time.
#
#   reference_model/scripts/ablations.sh BASE_CHECKPOINT [STEPS] [OUT]
#
# BASE_CHECKPOINT: the recipe's stage 0 (checkpoints/full.json), shared by all.
# A run whose model.pt exists is not trained again: the script picks up where it
# stopped, and once everything is trained it only scores.
# Environment: TRAIN (default data/synthetic/train), TEST (data/synthetic/test),
# SEEDS ("1 2 3"), EXPERIMENTS ("full A3 A4 B2 B5"), MAX_SAMPLES (1024).
set -euo pipefail
base=${1:?usage: ablations.sh BASE_CHECKPOINT [STEPS] [OUT]}
steps=${2:-1500}
out=${3:-runs/ablations}
train=${TRAIN:-data/synthetic/train}
test=${TEST:-data/synthetic/test}
seeds=${SEEDS:-1 2 3}
experiments=${EXPERIMENTS:-full A3 A4 B2 B5}
max_samples=${MAX_SAMPLES:-1024}

for seed in $seeds; do
  for experiment in $experiments; do
    run="$out/$experiment-seed$seed"
    [ -f "$run/model.pt" ] && continue
    handdgp train "$experiment" --run-dir "$run" --no-progress \
      --set "data.train=$train" --set "data.test=$test" \
      --set "train.seed=$seed" --set "train.init_from=$base" \
      --set "train.max_steps=$steps" --set train.warmup_steps=50 \
      --set train.num_workers=0 --set "train.eval_every=$steps" \
      --set "train.checkpoint_every=$steps" --set loss.pose=10 \
      --set 'loss.camera_space_ramp=[0,0.25]'
  done
done

for seed in $seeds; do
  checkpoints=()
  for experiment in $experiments; do checkpoints+=("$out/$experiment-seed$seed/model.pt"); done
  handdgp evaluate "${checkpoints[@]}" --data "$test" --max-samples "$max_samples" \
    --out "$out/evaluation-seed$seed"
  case " $experiments " in
    *" B2 "*)
      handdgp evaluate "$out/B2-seed$seed/model.pt" --positioning refine --data "$test" \
        --max-samples "$max_samples" --out "$out/evaluation-B4-seed$seed" ;;
  esac
done
