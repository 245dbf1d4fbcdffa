#!/usr/bin/env bash
# One training stage of the `full` model on a GPU machine held for a few minutes, in one
# prepared command: data, training from the shipped checkpoint, the weights in parts.
#
#   OUT=DIR [BATCH=32 LR=2e-4 WARMUP=100] bash reference_model/scripts/gpu_stage.sh STEPS MINUTES [IMAGES]
#
# STEPS: the stage's schedule (warm-up and cosine decay over STEPS steps of BATCH), or
# `auto`: a probe of PROBE_STEPS (default 300) steps measures the step rate and the
# schedule is as long as fits MINUTES; MINUTES: wall-clock budget of the training (the
# run stops there if STEPS is not reached, and the last periodic checkpoint is kept);
# IMAGES: training images to render
# (default: the recipe's 32768 where OpenGL through EGL works, else 8192, which the
# torch rasterizer renders in about as long).
# Writes to OUT: model.pt (or, stopped at the budget, model-partial.pt from the last
# checkpoint) split into 15 MB parts, the run's config, metrics and log, the GPU's
# utilisation every 5 s (gpu-util.txt) and the loader's speed (loader.md, see
# LOADER_SECONDS): eight files at most, 64 MB in all.
#
# A machine with PyTorch but without kornia, kornia_rs, orjson or moderngl gets them as
# wheels fetched beforehand on a machine with a package index, in the repository root,
# into a folder that is not committed:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl kornia==0.9.0 kornia_rs==0.2.0 orjson==3.13.0 \
#     moderngl==5.13.0 glcontext==3.1.0
# (7.5 MB); the script installs whatever `.whl/` holds. OpenGL through EGL also needs the
# EGL and OpenGL loader libraries (libegl1, libopengl0, libgl1, libglvnd0) on the machine;
# without them make-data uses its torch rasterizer: about 7 images per second per core
# against about 50 (`handdgp make-data --num 256 --workers 2`, with and without
# `--backend torch`, on this project's 2-core CPU).
#
# Environment: OUT (required), WORK (scratch, default /tmp/handdgp-gpu), DEVICE (default
# cuda), PYTHON (default python3), TEST_IMAGES (the run's periodic evaluation set,
# default 256), SCRIPT_SECONDS (if set, the whole script's wall-clock budget: training
# gets what data making leaves, less 25 s, instead of MINUTES), EXTRA (more `--set KEY=VALUE`
# arguments for both training commands, split on spaces), LOADER_SECONDS (if set, first
# time the data loader alone for that many seconds per variant, into loader.md:
# benchmarks/bench_data_loading.py). Its test runs it on the CPU in miniature.
#
# Then join the parts and measure the candidate as every stage is measured:
#   cat DIR/model.pt.part-* > runs/full-gpu/model.pt
#   reference_model/scripts/measure_stage.sh runs/full-gpu/model.pt full runs/full-gpu/measure
# The weights' config names the scratch data folders and the shipped full.pt as init_from:
# before shipping, set them to the recipe's (data/synthetic/..., the previous stage's run).
set -euo pipefail
steps=${1:?usage: gpu_stage.sh STEPS MINUTES [IMAGES]}
minutes=${2:?usage: gpu_stage.sh STEPS MINUTES [IMAGES]}
images=${3:-}
out=${OUT:?OUT: the folder to write the weights, config, metrics and log to}
work=${WORK:-/tmp/handdgp-gpu}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$work/site" .whl/*.whl
  export PYTHONPATH="$work/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:$PWD/reference_model:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$python" -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__,
      'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"

start=$SECONDS
workers=$(nproc)
if [ -z "$images" ]; then
  egl=$("$python" -c "from handdgp.data.render import egl_available; print(int(egl_available()))")
  images=$([ "$egl" = 1 ] && echo 32768 || echo 8192)
  echo "EGL available: $egl; rendering $images training images"
fi
"$python" -m handdgp make-data --out "$work/data/train" --num "$images" --seed 100 \
  --workers "$workers" --no-progress
"$python" -m handdgp make-data --out "$work/data/test" --num "${TEST_IMAGES:-256}" --seed 9001 \
  --workers "$workers" --no-progress
echo "data: $((SECONDS - start)) s"
if [ -n "${LOADER_SECONDS:-}" ]; then  # what the data loader alone delivers, into loader.md
  "$python" benchmarks/bench_data_loading.py "$work/data/train" --workers "$((workers > 2 ? workers - 2 : 1))" \
    --batch "${BATCH:-32}" --seconds "$LOADER_SECONDS" --rounds 1 > "$out/loader.md" 2>&1 || true
  cat "$out/loader.md"
fi

# Stage 6's settings (checkpoints/full.json), warm-started from the shipped weights; the
# batch, peak learning rate and warm-up from BATCH, LR and WARMUP.
run="$work/run"
stage=(-m handdgp train full --run-dir "$run" --no-progress
  --set "data.train=$work/data/train" --set "data.test=$work/data/test"
  --set net.keypoint_stride=4 --set net.keypoint_context=true
  --set train.init_from=reference_model/handdgp/checkpoints/full.pt
  --set "train.batch_size=${BATCH:-32}" --set "train.lr=${LR:-2e-4}"
  --set "train.warmup_steps=${WARMUP:-100}" --set train.epochs=100000
  --set train.eval_every=1000 --set loss.pose=10 --set loss.keypoint2d=3
  --set 'loss.camera_space_ramp=[0,0]' --set "train.num_workers=$((workers > 2 ? workers - 2 : 0))"
  --set train.amp=true --set "train.device=$device")
# shellcheck disable=SC2206  # EXTRA is split on spaces on purpose
stage+=(${EXTRA:-})
status=0
train_start=$SECONDS
if command -v nvidia-smi > /dev/null; then  # the GPU's utilisation every 5 s, into gpu-util.txt
  (while sleep 5; do
     echo "$((SECONDS - train_start)) s: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"
   done) > "$out/gpu-util.txt" 2>&1 &
  gpu_poller=$!
  trap 'kill "$gpu_poller" 2> /dev/null || true' EXIT
fi
budget=$((minutes * 60))
if [ -n "${SCRIPT_SECONDS:-}" ]; then  # the whole script's budget: training gets what is left
  budget=$((SCRIPT_SECONDS - SECONDS - 25))
fi
if [ "$steps" = auto ]; then
  # A probe of PROBE_STEPS steps (warm-up included) on a schedule too long to decay,
  # stopped at its checkpoint; the step rate it measures sets the schedule's length to
  # what fits the budget, and the stage resumes from the probe's checkpoint.
  probe=${PROBE_STEPS:-300}
  (while sleep 1; do
     echo "$SECONDS $(cat "$run/metrics.jsonl" 2>/dev/null | wc -l)"
   done) > "$work/probe-progress" &
  poller=$!
  "$python" "${stage[@]}" --set train.max_steps=1000000 --set "train.checkpoint_every=$probe" \
    --stop-after "$probe" >> "$out/train.log" 2>&1 || status=$?
  kill "$poller"
  [ "$status" = 0 ] || { echo "probe failed: exit $status" >&2; tail -20 "$out/train.log" >&2; exit 1; }
  # 45 s for the restart, final save and evaluation, and 85 % of the probe's rate for the
  # evaluations and checkpoints on the way (stage 7, sized at 95 %, reached 2,389 of 2,472).
  left=$((budget - (SECONDS - train_start) - 45))
  steps=$(awk -v probe="$probe" -v left="$left" -v whole="$((SECONDS - train_start))" '
    $2 >= 30 && !t0 { t0 = $1; n0 = $2 } { t1 = $1; n1 = $2 }
    END { rate = (t1 > t0 && n1 > n0) ? (n1 - n0) / (t1 - t0) : probe / whole;
          printf "%d %.2f\n", probe + int(0.85 * rate * (left > 0 ? left : 0)), rate }' \
    "$work/probe-progress")
  echo "probe: ${steps#* } steps/s after the first 30 steps; schedule: ${steps% *} steps"
  steps=${steps% *}
fi
timeout --signal=INT "$((budget - (SECONDS - train_start)))" "$python" "${stage[@]}" \
  --set "train.max_steps=$steps" --set train.checkpoint_every=250 >> "$out/train.log" 2>&1 || status=$?
seconds=$((SECONDS - train_start))
echo "training: exit $status after $seconds s (124: stopped at the budget)"
"$python" -c "import json, sys
lines = open(sys.argv[1]).read().splitlines()
step = max((json.loads(l).get('step', 0) for l in lines), default=0)
print(f'reached step {step}: {step / max(int(sys.argv[2]), 1):.1f} steps/s, start-up and data loading included')" \
  "$run/metrics.jsonl" "$seconds" || true

weights="$run/model.pt"
if [ ! -f "$weights" ]; then
  if [ ! -f "$run/checkpoint.pt" ]; then
    echo "no weights: the budget ended before the first checkpoint (every 250 steps)" >&2
    exit 1
  fi
  # The last periodic checkpoint without its optimizer state, in the format of model.pt.
  weights="$run/model-partial.pt"
  "$python" -c "import sys, torch; s = torch.load(sys.argv[1], map_location='cpu', weights_only=True)
torch.save({k: s[k] for k in ('model', 'config', 'step')}, sys.argv[2]); print('partial: step', s['step'])" \
    "$run/checkpoint.pt" "$weights"
fi
split -b 15M -d "$weights" "$out/$(basename "$weights").part-"
cp "$run"/*.json* "$out/" 2>/dev/null || true
ls -la "$out"
