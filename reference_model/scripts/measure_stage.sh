#!/usr/bin/env bash
# Every held-out measurement a new training stage is judged and documented by, into one folder.
#
#   reference_model/scripts/measure_stage.sh CANDIDATE PREVIOUS OUT
#
# CANDIDATE: the new stage's model.pt; PREVIOUS: the shipped checkpoint it must beat
# (a file, or the shipped name `full`). Writes to OUT: baselines.json / .log (constant
# hand, MediaPipe + DLT and both checkpoints, each also with turned views (`+ TTA`), `handdgp
# baselines`), error_budget.log
# (where the camera-space and 2D errors come from) and spread.log (2D error in crop
# pixels, keypoint spread, depth bias). Environment: TRAIN (default
# data/synthetic/train), TEST (data/synthetic/test). One thread: it may run next to
# a training job. About 20 minutes on one core.
set -euo pipefail
candidate=${1:?usage: measure_stage.sh CANDIDATE PREVIOUS OUT}
previous=${2:?usage: measure_stage.sh CANDIDATE PREVIOUS OUT}
out=${3:?usage: measure_stage.sh CANDIDATE PREVIOUS OUT}
train=${TRAIN:-data/synthetic/train}
test=${TEST:-data/synthetic/test}
export OMP_NUM_THREADS=1
mkdir -p "$out"
scripts=$(dirname "$0")
python "$scripts/error_budget.py" "$candidate" --data "$test" --num 1024 > "$out/error_budget.log"
python "$scripts/keypoint_spread.py" "$candidate" --data "$test" > "$out/spread.log"
handdgp baselines "$candidate" "$previous" --data "$test" --train "$train" --train-samples 4096 \
  --mediapipe --tta --out "$out/baselines.json" > "$out/baselines.log" 2>&1
echo "wrote $out/{error_budget,spread,baselines}.log and baselines.json"
