#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU (none of this runs on CI, which has no GPU):
#   tests   pytest tests/test_gpu.py: fp16 / bf16 autocast steps, a CUDA run scored on the CPU, inference agreeing
#           across devices, DDP over NCCL (the 2-GPU torchrun test runs where 2 GPUs are present);
#   run     exp 7 with the quick preset trained and scored on the GPU (default AMP: fp16), its time and Dice;
#   repeat  a smoke run trained twice with the same seed in deterministic mode, the weights compared;
#   bench   benchmarks/run.py --device cuda --gpu-only: inference, and the paper preset's G+S+D step with AMP off /
#           fp16 / bf16, deterministic or cuDNN-autotuned.
# usage: bash benchmarks/gpu_check.sh [OUT_DIR] [SECTIONS]      SECTIONS: comma-separated, default tests,run,repeat,bench
# writes OUT_DIR/gpu_check.log, the exp 7 run's results.json and learning_curves.png, and benchmark.md
set -uo pipefail
out=${1:-gpu-check}; sections=${2:-tests,run,repeat,bench}; mkdir -p "$out"; export PYTHONUNBUFFERED=1
want() { [[ ",$sections," == *",$1,"* ]]; }
log="$out/gpu_check.log"; exec > >(tee -a "$log") 2>&1
step() { echo; echo "=== $* ($(date +%T))"; }
step machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda,
'cudnn', torch.backends.cudnn.version(), 'GPUs', torch.cuda.device_count(), 'CPU threads', torch.get_num_threads())"

if want tests; then
step "pytest tests/test_gpu.py"
timeout 420 python3 -m pytest tests/test_gpu.py -v -p no:cacheprovider -o addopts= 2>&1 | grep -v '^  ' | tail -40
fi

if want run; then
step "exp 7, quick preset, seed 0, patch split, on the GPU"
run=$(mktemp -d)/exp7-quick-patch-seed0-cuda
timeout 600 python3 - "$run" <<'EOF'
import sys, time, torch
from advnorm.evaluate import run_experiment
t = time.time()
r = run_experiment(7, 'quick', 'synthetic', 0, 'patch', out=sys.argv[1], device='cuda', progress=False)
print(f"wall {time.time() - t:.0f} s (train {r['train_seconds']:.0f} s, {r['train_patches_per_s']:.1f} patches/s; "
      f"eval {r['eval_seconds']:.0f} s); peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
print('test patches CSF/GM/WM', r['patch_dice']['mean'], '| volumes', r['volume_dice']['mean'],
      '| scored', r['checkpoint_scored'], 'step', r['scored_step'], '| identity PSNR end of warm-up',
      r['identity_psnr_db_end_of_warmup'])
EOF
cp "$run/results.json" "$run/learning_curves.png" "$out/" 2>/dev/null
fi

if want repeat; then
step "the same smoke run twice on the GPU in deterministic mode: are the weights the same?"
timeout 300 python3 - <<'EOF'
import tempfile, warnings
from advnorm.train import train
from advnorm.core import load_checkpoint
warnings.filterwarnings('ignore', message='.*does not have a deterministic implementation.*')
d = tempfile.mkdtemp()
w = [load_checkpoint(train(7, 'smoke', out=f'{d}/r{i}', device='cuda', progress=False)/'checkpoint.pt')['nets'] for i in range(2)]
diff = {k: max(float((w[0][k][n].float() - w[1][k][n].float()).abs().max()) for n in w[0][k]) for k in w[0]}
print('max abs weight difference between the two runs, per network:', diff)
EOF
fi

if want bench; then
step "benchmarks/run.py --device cuda --gpu-only"
timeout 600 python3 benchmarks/run.py --device cuda --gpu-only > "$out/benchmark.md"; cat "$out/benchmark.md"
fi
step done
