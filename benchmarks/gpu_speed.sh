#!/usr/bin/env bash
# Issue 26 on a GPU machine, in one call (none of this runs on CI, which has no GPU):
#   levers  benchmarks/run.py --device cuda --levers --profile: the paper preset's G+S+D step (batch 16) as train() runs
#           it, then with each speed lever alone and with all that helped: patches/s, TFLOP/s, % of the device's peak
#           (advnorm.flops), peak memory, deterministic or not; the top 15 CUDA kernels of the fastest setting;
#   data    the paper preset's 1 mm benchmark (advnorm.benchmark.ensure_benchmark(voxel_mm=1.0)), subjects made in parallel;
#   epoch   exp 7 with the paper preset for one epoch, train(amp='bf16', deterministic=False), timed; 50 epochs extrapolated.
# usage: bash benchmarks/gpu_speed.sh OUT [SECTIONS]        SECTIONS: comma-separated, default levers,data,epoch
# Time caps per section, in seconds (environment): LEVERS_S=240 DATA_S=75 EPOCH_S=150; with start-up, about 8 minutes
# (a section stops at its cap and reports how far it got; `timeout` backs each cap up).
# Nothing is installed from a network. advnorm's own dependencies that the machine's image lacks (nibabel, MONAI,
# nilearn; pure-Python wheels) are installed from .whl/ when advnorm does not import without them: fetch them on a machine
# with an index, e.g. `python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
# -d .whl nibabel==5.4.2 monai==1.6.1 nilearn==0.14.1` (the versions of the 2026-11-28 record), and carry .whl/ along.
# QUICK=1 DEVICE=cpu: the same script at smoke sizes on a CPU (a check of the script itself; its figures mean nothing).
# Writes OUT/gpu_speed.log, OUT/levers.md, OUT/levers.json, OUT/data.json, OUT/epoch.json and OUT/summary.json.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu_speed.sh OUT [SECTIONS]" >&2; exit 2; }
mkdir -p "$1" && out=$(cd "$1" && pwd) || exit 2
sections=${2:-levers,data,epoch}
LEVERS_S=${LEVERS_S:-240}; DATA_S=${DATA_S:-75}; EPOCH_S=${EPOCH_S:-150}; DEVICE=${DEVICE:-cuda}; QUICK=${QUICK:-0}
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
want() { [[ ",$sections," == *",$1,"* ]]; }
log="$out/gpu_speed.log"; exec > >(tee -a "$log") 2>&1
step() { echo; echo "=== $* ($(date +%T), ${SECONDS} s in)"; }

step machine
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}      # this checkout's advnorm, before any installed one
if ! python3 -c 'import advnorm.train' 2> /dev/null && compgen -G '.whl/*.whl' > /dev/null; then
    echo "advnorm's dependencies from .whl/: $(cd .whl && echo *.whl)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
python3 -c "import torch, platform, advnorm.train, advnorm.flops; print('python', platform.python_version(), 'torch', torch.__version__,
'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'GPUs', torch.cuda.device_count(), 'CPU threads', torch.get_num_threads())" \
    || { echo "advnorm does not import here: carry its missing dependencies as wheels in .whl/ (see benchmarks/gpu_speed.sh)"; exit 1; }
if [ "$QUICK" = 1 ]; then preset=smoke; quick=(--quick --no-compile); amp=off; workers=2
else preset=paper; quick=(); amp=bf16; workers=15; fi

if want levers; then
step "levers: benchmarks/run.py --device $DEVICE --levers --profile (cap ${LEVERS_S} s)"
timeout $((LEVERS_S + 90)) python3 benchmarks/run.py --device "$DEVICE" --levers --profile ${quick[@]+"${quick[@]}"} --budget "$LEVERS_S" \
    --json "$out/levers.json" 2>&1 | tee "$out/levers.md"
echo "levers: exit ${PIPESTATUS[0]}"
fi

if want data; then
step "data: the $preset preset's benchmark (cap ${DATA_S} s)"
timeout $((DATA_S + 30)) python3 benchmarks/gpu_speed.py data --preset $preset --workers $workers --budget "$DATA_S" --json "$out/data.json"
echo "data: exit $?"
fi

if want epoch; then
step "epoch: exp 7, $preset preset, one epoch, train(amp='$amp', deterministic=False) (cap ${EPOCH_S} s)"
timeout $((EPOCH_S + 30)) python3 benchmarks/gpu_speed.py epoch --preset $preset --device "$DEVICE" --amp $amp --budget "$EPOCH_S" \
    --levers "$out/levers.json" --json "$out/epoch.json"
echo "epoch: exit $?"
fi

step summary
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1]); s = {}
for name in ('levers', 'data', 'epoch'):
    f = out/f'{name}.json'
    s[name] = json.loads(f.read_text()) if f.is_file() else None
(out/'summary.json').write_text(json.dumps(s, indent=1, default=str))
lev = s['levers'] or {}
for r in lev.get('rows', []):
    if r.get('patches_per_s'):
        pct = (f"{r['percent_of_peak']:.1f} % of {r['peak_dtype']} peak" if r.get('percent_of_peak') is not None
               else 'peak unknown' if r.get('peak_gib') is not None else 'no GPU: no peak')
        print(f"{r['patches_per_s']:9.1f} patches/s {r['tflops']:8.2f} TFLOP/s  {pct:24s} {r['setting']}")
    else: print(f"{'':46s}{r['setting']}: {r.get('note')}")
ep = s['epoch'] or {}
print('epoch:', {k: ep.get(k) for k in ('completed', 'stopped', 'steps_per_epoch', 'steps_seen', 'setup_s', 'warmup_patches_per_s', 'end_of_epoch_s')})
print('extrapolation:', ep.get('extrapolation'))
PY
step "done in ${SECONDS} s"
