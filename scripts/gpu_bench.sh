#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md (issue 7) on one CUDA device, in one short run.
# Usage: scripts/gpu_bench.sh OUT_DIR   (PYTHON=… picks the interpreter; default python3)
# Each part is time-boxed and independent: a failure leaves the others' JSON in OUT_DIR.
# What it prints (GPU, sync counts, memory lines) is the rest of the record: keep its log.
set -u
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
common=(--lr 1e-3 --input-scale 256 --device cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

echo "== issue 7: camera 512² full batch, DEQ vs explicit 4-layer MFNs"
timeout 100 "$py" -m implicit2 bench --models deq-fourier-1L256D mfn-fourier-1L256D \
    mfn-fourier-4L256D deq-gabor-1L256D mfn-gabor-4L256D deq-siren-1L256D mfn-siren-4L256D \
    --image camera --size 512 --steps 300 "${common[@]}" --out "$out/camera512_cuda.json"

echo "== issue 7: no host syncs per step"
timeout 60 "$py" scripts/cuda_sync_check.py 200 100

echo "== issue 7: peak memory against signal_batch 0's estimate"
timeout 90 "$py" scripts/cuda_memory_check.py "$out/memory.jsonl"

echo "== issue 7: the size/filter grid (efficiency figure), camera 256², 50 steps"
timeout 90 "$py" -m implicit2 bench --grid --filters fourier gabor siren \
    --sizes 1L64D 1L256D 4L256D --image camera --size 256 --steps 50 "${common[@]}" \
    --out-dir "$out/grid"
tar czf "$out/grid.tgz" -C "$out" grid && rm -r "$out/grid"  # one file: OUT_DIR stays small

echo "== issue 7: 100 crops of 128², 3000 steps, batched vs one by one (first ${SEQUENTIAL:-10})"
timeout "${SIGNALS_TIMEOUT:-300}" "$py" -m implicit2 bench --models deq-fourier-1L256D \
    --image camera --signals 100 --size 128 --steps 3000 "${common[@]}" --compare-sequential \
    --sequential-signals "${SEQUENTIAL:-10}" --out "$out/crops100_cuda.json"

echo "== issue 7: 8 crops of 256², eager then compiled steps, on an explicit cuda:0"
for mode in eager compile; do
    flag=(); [ "$mode" = compile ] && flag=(--compile)
    timeout "${COMPILE_TIMEOUT:-120}" "$py" -m implicit2 bench --models deq-fourier-1L256D \
        --image camera --signals 8 --size 256 --steps 300 --lr 1e-3 --input-scale 256 \
        --device cuda:0 --compare-sequential --sequential-signals 2 "${flag[@]}" \
        --out "$out/crops8_${mode}_cuda0.json"
done
