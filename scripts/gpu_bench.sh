#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md (issues 2 and 7) on one CUDA device, in one short run.
# Usage: scripts/gpu_bench.sh OUT_DIR   (PYTHON=… picks the interpreter; default python3)
# Each part is time-boxed and independent: a failure leaves the others' JSON in OUT_DIR.
set -u
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
common=(--lr 1e-3 --input-scale 256 --device cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

echo "== issue 2: camera 256², 300 steps"
timeout 90 "$py" -m implicit2 bench --models deq-fourier-1L256D mfn-fourier-1L256D \
    mfn-fourier-4L256D --image camera --size 256 --steps 300 "${common[@]}" \
    --out "$out/camera256_cuda.json"

echo "== issue 7: camera 512² full batch, DEQ vs explicit 4-layer MFNs"
timeout 100 "$py" -m implicit2 bench --models deq-fourier-1L256D mfn-fourier-1L256D \
    mfn-fourier-4L256D deq-gabor-1L256D mfn-gabor-4L256D deq-siren-1L256D mfn-siren-4L256D \
    --image camera --size 512 --steps 300 "${common[@]}" --out "$out/camera512_cuda.json"

echo "== issue 7: no host syncs per step"
timeout 60 "$py" scripts/cuda_sync_check.py 200 100 | tee "$out/syncs.txt"

echo "== issue 7: 100 crops of 128², 3000 steps, batched vs one by one (first ${SEQUENTIAL:-10})"
timeout "${SIGNALS_TIMEOUT:-300}" "$py" -m implicit2 bench --models deq-fourier-1L256D \
    --image camera --signals 100 --size 128 --steps 3000 "${common[@]}" --compare-sequential \
    --sequential-signals "${SEQUENTIAL:-10}" --out "$out/crops100_cuda.json"

echo "== issue 7: compiled steps (re-application), 8 crops of 256², on an explicit cuda:0"
timeout "${COMPILE_TIMEOUT:-150}" "$py" -m implicit2 bench --models deq-fourier-1L256D \
    --image camera --signals 8 --size 256 --steps 300 --lr 1e-3 --input-scale 256 \
    --device cuda:0 --compare-sequential --compile --out "$out/compiled8_cuda0.json"
