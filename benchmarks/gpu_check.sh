#!/usr/bin/env bash
# Issue 3's GPU checks in one call, for a lent GPU machine: the environment, then every model's latency and
# its error against PyTorch fp32 on the CPU, on each CUDA runtime the machine has (benchmarks/model_latency.py).
# The normal frames come from an MVTec-layout folder, so the twin's renderer (open3d) need not be there:
#   .venv/bin/xrserver twin export --size 256x256 --cameras lower --train-vehicles 4 --frames-per-vehicle 4 \
#       --val-normal 0 --val-defects 0 --test-normal 3 --test-defects 0 --out /tmp/tw
#   bash benchmarks/gpu_check.sh /tmp/tw/lower /tmp/gpu_check [python3]
set -uo pipefail
frames=$1
out=$2
py=${3:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/env.txt"
"$py" -c "import torch, onnxruntime as o, cv2, numpy
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| onnxruntime', o.__version__,
      o.get_available_providers(), '| opencv', cv2.__version__, '| numpy', numpy.__version__)" | tee -a "$out/env.txt" \
    || exit 1
gpu="torch-cuda torch-cuda-fp16-cl onnx-cuda onnx-tensorrt"
common=(--views 4 --train-frames 16 --fit-steps 2 --warmup 5 --repeats 30 --frames "$frames" --runtimes $gpu)
timeout 330 "$py" benchmarks/model_latency.py --preset paper --size 256x256 "${common[@]}" \
    --json "$out/paper256.json" 2>&1 | tee "$out/paper256.log"
timeout 100 "$py" benchmarks/model_latency.py --preset paper --size 640x480 --models gaussian seamseg "${common[@]}" \
    --json "$out/seamseg640.json" 2>&1 | tee "$out/seamseg640.log"
