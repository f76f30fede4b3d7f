#!/usr/bin/env bash
# One prepared call on a lent GPU machine (16 cores, one H200), with no project install there:
#   1. the small-scale GAD vs SeqKD study on the CPU cores (bench/quality_study.py --jobs N), in the background;
#   2. the monitor's overhead on 2 CPU cores (bench/gad_overhead.py), in the background;
#   3. on the GPU meanwhile: GAD steps of a randomly initialised real-size student in bf16, with and without the
#      held-out discriminator check (scripts/gpu_smoke.py --modes transformers,monitor): step time, the check's
#      cost, peak memory.
# Missing Python packages travel as wheels in .whl/ (see the device tool's notes); results go to $OUT.
#
#   bash scripts/device_check.sh [study jobs] [arch]
set -uo pipefail
JOBS=${1:-13}
ARCH=${2:-Qwen2.5-0.5B}
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, trl, datasets, pydantic; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'cuda', torch.cuda.is_available())" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

start=$(date +%s)
if [ "$JOBS" != "0" ]; then
    CUDA_VISIBLE_DEVICES="" python3 bench/quality_study.py --jobs "$JOBS" --out /tmp/qs > "$OUT/study.log" 2>&1 &
    STUDY=$!
fi
# The monitor's cost on CPU with a small model, against plain GAD and plain GRPO steps (ratios in one run).
CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=2 python3 bench/gad_overhead.py --rounds 3 --steps 6 > "$OUT/overhead.log" 2>&1 &
OVERHEAD=$!
python3 scripts/gpu_smoke.py --arch "$ARCH" --modes transformers,monitor --steps 5 --batch-size 8 --group-size 8 \
    --max-new-tokens 256 --prompt-tokens 256 --eval-prompts 32 --eval-samples 4 --out /tmp/gs > "$OUT/gpu.log" 2>&1
echo "gpu check exit $? after $(( $(date +%s) - start )) s"
cp /tmp/gs/summary.json "$OUT/gpu_summary.json" 2>/dev/null
tail -n 12 "$OUT/gpu.log"
wait "$OVERHEAD"; echo "overhead bench exit $?"; grep -v -i warn "$OUT/overhead.log" | tail -n 8
if [ -n "${STUDY:-}" ]; then
    wait "$STUDY"; echo "study exit $? after $(( $(date +%s) - start )) s"
    for f in results.json report.md report.png; do cp "/tmp/qs/$f" "$OUT/study_$f" 2>/dev/null; done
    tail -n 20 "$OUT/study.log"
fi
