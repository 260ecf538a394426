#!/usr/bin/env bash
# Every GPU measurement of benchmarks/RESULTS.md in one command (a few minutes on one GPU):
#   bash benchmarks/gpu_checks.sh [OUT]              # OUT: where the logs go (default runs/gpu_checks)
#   DEVICE=cpu SMOKE=1 bash benchmarks/gpu_checks.sh   # the same steps at toy sizes on the CPU (a smoke run)
# 1. the SDST training step against Moment-DETR's (paper: 1.79x), fp32, bf16 autocast and torch.compile;
# 2. the TAL detector, the Coarse-Fine dense detector and VicTR through the engine's trainer, 32-true and
#    bf16-mixed, at the papers' batch sizes and widths, on synthetic data of the papers' feature widths
#    (THUMOS14 I3D 2048-d, batch 2, 2304 steps; Charades I3D 1024-d, batch 32, 128 frames; CLIP B/16
#    512-d frames, batch 8, 32 frames, 4 blocks of 8 heads).
# Uses PYTHON (default .venv/bin/python). Each part prints a markdown table; logs in OUT/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-.venv/bin/python}
[[ $PY == */* && $PY != /* ]] && PY=$ROOT/$PY  # absolute, not resolved: a venv's python is a link
OUT=${1:-runs/gpu_checks}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT/data"
OUT=$(realpath "$OUT")
DATA=$OUT/data  # OUT holds data/<preset> and a link to configs/: the configs' paths work there as written
ln -sfn "$ROOT/configs" "$OUT/configs"
export PYTHONUNBUFFERED=1

if [ -n "${SMOKE:-}" ]; then  # toy sizes: checks that every step runs, measures nothing
  STEP=(--batch 2 --steps 1 --warmup 1)
  TASK=(--steps 1 --warmup 1)
  TAL_SYNTH=(--set 'num_videos={train: 8, val: 2}')
  DENSE_SYNTH=(--set 'num_videos={train: 8, val: 2}')
  REC_SYNTH=(--set 'num_videos={train: 30, val: 10, zeroshot: 4}')
  TAL_SET=(--set data.batch_size=2)
  DENSE_SET=(--set data.batch_size=2)
  REC_SET=(--set data.batch_size=2)
else
  STEP=(--batch 32 --steps 20)
  TASK=(--steps 20 --warmup 5)
  TAL_SYNTH=(--set 'video_dims=[2048]')
  DENSE_SYNTH=(--set 'video_dims=[1024]')
  REC_SYNTH=(--set latent_dim=512)
  TAL_SET=(--set data.batch_size=2 --set data.max_seq_len=2304 --set model.embed_dim=512 --set model.head_dim=512)
  DENSE_SET=(--set data.batch_size=32 --set model.hidden_dim=512 --set model.head_dim=1024)
  REC_SET=(--set data.batch_size=8 --set data.frames=32 --set model.layers=4 --set model.heads=8)
fi

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.log"
fi

# 1. SDST vs Moment-DETR / QD-DETR
for lever in "" "--autocast bf16" "--compile"; do
  name=train_step${lever// /_}
  # shellcheck disable=SC2086
  "$PY" benchmarks/train_step.py --device "$DEVICE" "${STEP[@]}" $lever 2>&1 | tee "$OUT/$name.log"
done

# 2. the other tasks through the engine
"$PY" -m momentkit.cli.main synth tal-small --out "$DATA/tal-small" "${TAL_SYNTH[@]}" > "$OUT/synth.log"
"$PY" -m momentkit.cli.main synth dense-small --out "$DATA/dense-small" "${DENSE_SYNTH[@]}" >> "$OUT/synth.log"
"$PY" -m momentkit.cli.main synth recognition-small --out "$DATA/recognition-small" "${REC_SYNTH[@]}" >> "$OUT/synth.log"
task() {  # config, overrides...; run in OUT, where data/ is the synthetic data generated above
  (cd "$OUT" && "$PY" "$ROOT/benchmarks/task_step.py" "$@" --device "$DEVICE" --precision 32-true bf16-mixed \
    "${TASK[@]}")
}
task configs/tal/tal_small.yaml "${TAL_SET[@]}" 2>&1 | tee "$OUT/task_tal.log"
task configs/dense/dense_small_coarse_fine.yaml "${DENSE_SET[@]}" 2>&1 | tee "$OUT/task_dense.log"
task configs/victr/recognition_small_victr.yaml "${REC_SET[@]}" 2>&1 | tee "$OUT/task_victr.log"
