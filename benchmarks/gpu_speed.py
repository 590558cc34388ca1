"""The Python parts of benchmarks/gpu_speed.sh: the paper preset's 1 mm benchmark made on many cores, and one epoch of
exp 7 trained with the fast settings, timed, and extrapolated to the paper's 50 epochs.

    python benchmarks/gpu_speed.py data  --preset paper --workers 15 --budget 75
    python benchmarks/gpu_speed.py epoch --preset paper --device cuda --amp bf16 --budget 150 --levers OUT/levers.json --json OUT/epoch.json
    python benchmarks/gpu_speed.py data --preset smoke --workers 2 && \\
        python benchmarks/gpu_speed.py epoch --preset smoke --device cpu --amp off --budget 120   # the code path, on a CPU

`data` writes exactly what `advnorm.benchmark.ensure_benchmark` writes (its own code writes the files), but makes the
subjects in parallel first: `make_subject` is a pure function of (seed, domain, n). `epoch` calls `advnorm.train.train`
for one epoch (`epochs=1`: the training steps, the validation and the checkpoint) and reads its progress from the run's
metrics.jsonl as it grows. Both stop at `--budget` seconds and say how far they got.
"""
from __future__ import annotations
import argparse, inspect, json, multiprocessing as mp, os, shutil, signal, sys, tempfile, threading, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import advnorm.benchmark as bench   # make_data replaces make_subject where make_benchmark looks it up: here
from advnorm.experiments import get_preset
from advnorm.train import train

PAPER_EPOCHS = 50

class OverBudget(Exception): "The section ran past its time cap."

def _alarm(seconds: float):
    "Raise OverBudget in the main thread after `seconds` (0 cancels)."
    def fire(*_): raise OverBudget(f'over its time cap of {seconds:.0f} s')
    signal.signal(signal.SIGALRM, fire); signal.setitimer(signal.ITIMER_REAL, max(seconds, 0))

# --- data ----------------------------------------------------------------------------------------------------------
def benchmark_args(preset) -> dict:
    "The arguments `resolve_data` gives `ensure_benchmark` for `preset`, with ensure_benchmark's defaults filled in."
    sig = inspect.signature(bench.ensure_benchmark).parameters
    return {k: v.default for k, v in sig.items() if v.default is not inspect.Parameter.empty} | dict(preset.benchmark) | {'n_third': 0}

def make_data(preset: str, workers: int) -> dict:
    "Generate the preset's benchmark with its subjects made by `workers` processes; returns what was done."
    a = benchmark_args(get_preset(preset))
    final = bench.benchmark_dir(a['seed'], a['n_infant'], a['n_adult'], a['voxel_mm'], a['n_third'], a['severity'])
    if (final/'benchmark.json').is_file(): return dict(benchmark=final.name, generated=False)
    jobs = [(d, n) for d, k in (('iSEG', a['n_infant']), ('MRBrainS', a['n_adult'])) for n in range(1, k + 1)]
    t = time.time()
    ex = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context('spawn'))
    try:
        futures = {job: ex.submit(bench.make_subject, *job, a['seed'], a['voxel_mm'], a['severity']) for job in jobs}
        made = {job: f.result() for job, f in futures.items()}
    except BaseException:   # over the budget (or failed): stop the workers now rather than wait for their subjects
        for proc in list((getattr(ex, '_processes', None) or {}).values()): proc.terminate()
        ex.shutdown(wait=False, cancel_futures=True); raise
    ex.shutdown()
    t_subjects = time.time() - t
    original = bench.make_subject
    def cached(domain, n, seed, voxel_mm, severity=1.0):   # make_benchmark's call, answered from the pool's results
        key_ok = (seed, voxel_mm, severity) == (a['seed'], a['voxel_mm'], a['severity'])
        return made.pop((domain, n)) if key_ok and (domain, n) in made else original(domain, n, seed, voxel_mm, severity)
    bench.make_subject = cached
    try: path = bench.ensure_benchmark(**(a | {'progress': False}))
    finally: bench.make_subject = original
    return dict(benchmark=path.name, generated=True, subjects=len(jobs), workers=min(workers, len(jobs)),
                subjects_s=round(t_subjects, 1), total_s=round(time.time() - t, 1))

# --- one epoch -----------------------------------------------------------------------------------------------------
class RunWatcher(threading.Thread):
    "Polls a run folder's metrics.jsonl each `every` s: when the first and the last training step were seen, and the end."
    def __init__(self, run: Path, every: float = 0.5):
        super().__init__(daemon=True); self.folder, self.every, self.stop = run, every, threading.Event()
        self.first = self.last = self.end = None     # (time, step) of the first / latest step record; time of the epoch's end
        self.steps_per_epoch = None

    def run_once(self):
        now = time.time()
        if self.steps_per_epoch is None and (self.folder/'config.json').is_file():
            try: self.steps_per_epoch = json.loads((self.folder/'config.json').read_text())['steps_per_epoch']
            except (ValueError, KeyError): pass
        try: lines = (self.folder/'metrics.jsonl').read_text().splitlines()
        except FileNotFoundError: return
        recs = [json.loads(l) for l in lines if l.strip().endswith('}')]
        steps = [r['step'] for r in recs if 'warmup' in r and 'val_dice_loss' not in r and 'step' in r]
        if steps:
            if self.first is None: self.first = (now, steps[0])
            if self.last is None or steps[-1] > self.last[1]: self.last = (now, steps[-1])
        if self.end is None and any('val_dice_loss' in r for r in recs): self.end = now

    def run(self):
        while not self.stop.is_set(): self.run_once(); self.stop.wait(self.every)

def one_epoch(preset: str, device: str, amp: str, exp=7, deterministic: bool = False, budget_s: float = 150,
              levers: str | None = None) -> dict:
    "Train exp `exp` for one epoch with `preset`, timed; extrapolated to the paper's 50 epochs."
    tmp = Path(tempfile.mkdtemp(prefix='gpu-speed-'))
    try: return _one_epoch(preset, device, amp, exp, deterministic, budget_s, levers, tmp/'run')
    finally: shutil.rmtree(tmp, ignore_errors=True)   # the run's checkpoints: ~0.6 GB at the paper's widths

def _one_epoch(preset, device, amp, exp, deterministic, budget_s, levers, out: Path) -> dict:
    p = get_preset(preset)
    w = RunWatcher(out); w.start()
    t0, err, done = time.time(), None, False
    try:
        _alarm(budget_s)
        train(exp, p, out=out, device=device, amp=amp, deterministic=deterministic, progress=False, epochs=1)
        done = True
    except OverBudget as e: err = str(e)
    finally: _alarm(0); t_end = time.time(); w.stop.set(); w.join(); w.run_once()
    wall = t_end - t0
    r = dict(exp=exp, preset=p.name, device=device, amp=amp, deterministic=deterministic, batch=p.batch_size,
             steps_per_epoch=w.steps_per_epoch, completed=done, stopped=err, wall_s=round(wall, 1))
    if w.first is None: return r | dict(note='no training step was recorded')
    (t1, s1), (t2, s2) = w.first, w.last
    r['setup_s'] = round(t1 - t0, 1)   # data, networks, the first step (cuDNN autotuning)
    r['steps_seen'] = s2
    if s2 > s1 and t2 > t1:
        r['warmup_patches_per_s'] = round((s2 - s1) * p.batch_size / (t2 - t1), 1)   # epoch 1 is all warm-up steps
    if done:
        final = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines() if '"done"' in l][-1]
        r['train_seconds'] = final['train_seconds']            # train()'s own clock: the steps, validation, checkpoints
        r['end_of_epoch_s'] = round(t_end - t2, 1)             # validation, G's identity PSNR, checkpoints (± the polling)
    r['extrapolation'] = extrapolate(r, p, levers)
    return r

def _joint_rate(levers: str | None) -> tuple[float | None, str]:
    "Patches/s of the joint-phase step with the trainer's fast settings, from benchmarks/run.py --levers --json."
    if not levers or not Path(levers).is_file(): return None, 'no levers JSON'
    rows = json.loads(Path(levers).read_text())['rows']
    row = next((r for r in rows if r['setting'].startswith("train(amp='bf16', deterministic=False)")), None)
    if not row or not row.get('patches_per_s'): return None, 'the levers run has no rate for the trainer fast settings'
    return row['patches_per_s'], row['setting']

def extrapolate(r: dict, p, levers: str | None) -> dict:
    "50 epochs: the warm-up epochs (3 to 10) at epoch 1's rate, the joint-phase epochs at the levers' rate for them."
    spe, rate = r.get('steps_per_epoch'), r.get('warmup_patches_per_s')
    if not spe or not rate: return dict(note='not enough measured')
    patches = spe * p.batch_size
    end = r.get('end_of_epoch_s', 0.0)
    warm_epoch = patches / rate + end
    e = dict(patches_per_epoch=patches, warmup_epoch_s=round(warm_epoch, 1), end_of_epoch_s=end,
             all_50_at_epoch1_rate_h=round(PAPER_EPOCHS * warm_epoch / 3600, 2))
    joint, source = _joint_rate(levers)
    e['joint_rate_source'] = source
    if joint:
        joint_epoch = patches / joint + end
        e['joint_patches_per_s'] = round(joint, 1); e['joint_epoch_s'] = round(joint_epoch, 1)
        for w in (p.warmup_epochs, p.warmup_max_epochs):   # the warm-up ends after 3 epochs, or at the latest after 10
            e[f'50_epochs_h_with_{w}_warmup'] = round((w * warm_epoch + (PAPER_EPOCHS - w) * joint_epoch) / 3600, 2)
    return e

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('what', choices=['data', 'epoch'])
    ap.add_argument('--preset', default='paper')
    ap.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1), help='data: processes making subjects')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--amp', default='bf16', choices=['auto', 'off', 'bf16', 'fp16'])
    ap.add_argument('--deterministic', action='store_true', help='epoch: deterministic algorithms (default: cuDNN autotunes)')
    ap.add_argument('--budget', type=float, default=150, help='seconds before the section stops and reports how far it got')
    ap.add_argument('--levers', default=None, help="epoch: benchmarks/run.py --levers --json output, for the joint-phase rate")
    ap.add_argument('--json', default=None, help='write the result here too')
    a = ap.parse_args(argv)
    t = time.time()
    if a.what == 'data':
        try: _alarm(a.budget); r = make_data(a.preset, a.workers)
        except OverBudget as e: r = dict(stopped=str(e))
        finally: _alarm(0)
    else: r = one_epoch(a.preset, a.device, a.amp, deterministic=a.deterministic, budget_s=a.budget, levers=a.levers)
    r['section_s'] = round(time.time() - t, 1)
    print(json.dumps(r, indent=1), flush=True)
    if a.json: Path(a.json).write_text(json.dumps(r, indent=1))
    ok = 'stopped' not in r or not r['stopped']
    if a.what == 'epoch': ok = ok and r.get('completed', False)
    sys.exit(0 if ok else 3)

if __name__ == '__main__': main()
