"""Throughput and memory of advnorm against the alternatives, measured side by side in one run and printed as ratios.

    python benchmarks/run.py            # a few minutes on a 2-core CPU
    python benchmarks/run.py --quick    # seconds: tiny sizes, a smoke test of this script (CI); the figures mean nothing
    python benchmarks/run.py --device cuda --levers --profile   # what makes the paper preset's step fast on a GPU
    python benchmarks/run.py --levers --quick --device cpu --no-compile --profile   # the same code path in seconds (CI)
    python benchmarks/run.py --step-throughput          # the training step's patches/s on this CPU, by width and threads
    python benchmarks/run.py --json benchmarks/records/cpu-DATE.json   # any mode: also write its record (below)

Timings on shared machines are noisy, so each pair is timed in alternating rounds in the same process and the table
reports the ratio of the medians. Sections: the data loader against the training step it feeds, our foreground patch
extraction against TorchIO's GridSampler with the same filter, the patch index against materialised patches,
whole-volume inference against MONAI's sliding_window_inference called directly, and the G+S+D step of each preset,
with the TFLOP/s it achieves (`advnorm.flops.step_flops` x steps/s) and, on a GPU, its share of the device's peak.

`--step-throughput` measures instead, on the CPU, the patches/s of exp 7's G+S+D training step (the quick preset's
batch and patches; the library's build_networks, build_optimizers, gs_step and d_step: forward, backward, optimiser
step) for G and S widths (8, 16, 32) and (16, 32, 64) with 1 and 2 threads, after an untimed warm-up step of each, and
prints the ratios between them, measured in the same run. `--steps N`: timed steps per setting (default 3); no timed
round starts that would end past `--budget` seconds (default 60): about a minute on an idle 2-core CPU; on a loaded
one the warm-up and the one timed round that always runs can take minutes (2 threads most).

`--levers` measures instead, in one run, the paper preset's step (batch 16) as the trainer runs it and with each speed
lever alone — bf16, cuDNN autotuning, channels_last_3d, a fused optimizer (the paper's SGD with momentum, fused),
no host sync per step, torch.compile in three modes (one of them CUDA graphs) — then with every lever that helped,
together; `--profile` adds the top 15 CUDA kernels of the fastest setting. Each lever runs in its own try block under a time cap: one that fails or overruns
says so in its row and the others still run.

`--json PATH` writes the run's record: every figure it printed, as numbers with their units (for the table: each
measurement's key, ours, other, unit, ratio — how many times ours beats other, in the goal's direction — goal and the
facts its label quotes, and the 1-minute load when it was taken), and the machine it ran on (CPU model,
cores, torch and its threads, OMP_NUM_THREADS and OMP_WAIT_POLICY, the load average before and after, the date, the
git commit). The default mode rewrites it after each section (`complete` false until the end), so a run cut short
keeps the sections it finished, each named in `sections_done`. Records committed under `benchmarks/records/` are what
`tools/readme_performance.py` writes the README's Performance section from.
"""
from __future__ import annotations
import argparse, datetime, json, os, platform, resource, signal, statistics, subprocess, sys, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch.utils.data import DataLoader

from advnorm.core import seed_everything, get_device
from advnorm.data import normalize_input
from advnorm.patches import PatchDataset, DomainBalancedSampler, extract_patches, pad_volume
from advnorm.evaluate import predict_volume
from advnorm.experiments import get_experiment, get_preset
from advnorm.synthetic import make_subject
from advnorm.train import build_networks, build_optimizers, gs_step, d_step, gan_diagnostics
from advnorm.runtime import make_autocast, check_finite
from advnorm.rundata import load_experiment_data
from advnorm.flops import step_flops, achieved, peak_tflops

PAPER_PATCHES_PER_S = 27_647 * 0.6 * 50 / (8 * 3600)   # the paper: 60 % of 27,647 patches x 50 epochs in 8 h, 2 GPUs
ROWS = []   # one dict per measurement: printed as the table, written as the record's rows

def _num(v: float) -> str: return f'{v:,.2f}'

def row(section, key, what, ours, unit, other=None, ratio=None, goal='', show=_num, **facts):
    """Add one measurement: `ours` and `other` numbers in `unit` (None: not measured), `ratio` a float or None, `show`
    formats a number for the table; `key` names it in the record, `facts` keeps what its label quotes (sizes, counts)."""
    text = dict(ours=facts.get('note', '') if ours is None else show(ours), other='' if other is None else show(other),
                ratio='' if ratio is None else f'{ratio:.1f}x')
    ROWS.append(dict(section=section, key=key, what=what, ours=ours, other=other, unit=unit, ratio=ratio, goal=goal,
                     load_1min=_load()[0], facts=facts, text=text))

def peak_rss_mib() -> float:
    "Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == 'darwin' else r / 1024

def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def timed(f, rounds: int):
    "Median seconds of `rounds` calls of `f()`, and the last result."
    ts = []
    for _ in range(rounds): t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), out

def side_by_side(a, b, rounds: int, dev=torch.device('cpu')) -> tuple[float, float]:
    "Median seconds of `a()` and of `b()`, timed in alternating rounds (a b, b a, a b, ...: neither always goes first)."
    ta, tb = [], []
    for r in range(rounds):
        for f, out in ((a, ta), (b, tb))[::1 if r % 2 == 0 else -1]:
            _sync(dev); t = time.perf_counter(); f(); _sync(dev); out.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)

# --- the training step -------------------------------------------------------------------------------------------
# how the step is run: None for amp means the preset's; the defaults are train()'s (`advnorm.train`)
BASE = dict(amp=None, deterministic=True, channels_last=False, fused=False, foreach=None, sync=True, compile=None)

def make_step(p, dev, exp=7, deterministic=True, **settings):
    """A function doing one joint-phase iteration of the trainer on a batch: the G+S update, then the D update.
    `settings` (keys of BASE) change how it runs: autocast, memory format, optimizer implementation, torch.compile mode,
    and `sync` — train()'s per-step host syncs (`check_finite` and the `.item()` of its log record); off by default here."""
    s = BASE | dict(deterministic=deterministic, sync=False) | settings
    e = get_experiment(exp); seed_everything(0, s['deterministic'])
    fmt = torch.channels_last_3d if s['channels_last'] else torch.contiguous_format
    nets = {k: m.to(dev).train().to(memory_format=fmt) for k, m in build_networks(e, p).items()}
    opts = build_optimizers(nets, p)
    if s['fused'] or s['foreach'] is not None:   # the same optimizer and hyper-parameters, another implementation
        kw = {'fused': True} if s['fused'] else {'foreach': s['foreach']}
        opts = {k: type(o)(nets[k].parameters(), **(o.defaults | kw)) for k, o in opts.items()}
    autocast, scaled = make_autocast(s['amp'] or p.amp, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=scaled)   # a pass-through unless fp16
    G, S, D = nets['G'], nets['S'], nets['D']
    if s['compile']: G, S, D = (torch.compile(m, mode=s['compile']) for m in (G, S, D))
    mark = torch.compiler.cudagraph_mark_step_begin if s['compile'] == 'reduce-overhead' else (lambda: None)
    def update(loss, keys):                                    # Run.update, as train_step does
        for k in keys: opts[k].zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for k in keys: scaler.step(opts[k])
        scaler.update()
    def step(x, y, z):
        mark()
        nets['D'].requires_grad_(False)                        # D is only a critic in the G+S update
        gs, x_hat = gs_step(G, S, D, x, y, z, warmup=False, identity=False, lambda_adv=p.lambda_adv, autocast=autocast)
        if s['sync']: check_finite(gs, 0, Path(os.devnull)); {k: v.item() for k, v in gs.items()}
        update(gs['total'], 'SG')
        nets['D'].requires_grad_(True)
        ld, logits = d_step(D, x, x_hat, z, autocast)
        if s['sync']: check_finite({'D': ld}, 0, Path(os.devnull))
        update(ld, 'D')
        if s['sync']: ld.item(); gan_diagnostics(logits, z)
    return step, nets

def random_batch(p, n, dev):
    "A batch of n patches of preset p: images in [0, 1], labels 0..3, domains alternating 0/1."
    g = torch.Generator().manual_seed(0); s = p.patch
    return (torch.rand(n, 1, s, s, s, generator=g).to(dev), torch.randint(0, 4, (n, s, s, s), generator=g).to(dev),
            (torch.arange(n) % 2).to(dev))

# --- sections --------------------------------------------------------------------------------------------------------
def bench_loader(p, quick):
    "Patches/s of PatchDataset + DomainBalancedSampler through a DataLoader vs patches/s the G+S+D step consumes."
    e = get_experiment(7)
    splits = load_experiment_data(e, p)
    ds = PatchDataset(splits, 'train', size=p.patch, norm=e.input_norm, domains=list(e.train))
    n_batches, n_steps, rounds = (4, 1, 1) if quick else (40, 3, 3)
    loader = DataLoader(ds, batch_size=p.batch_size, num_workers=p.num_workers, drop_last=True,
                        sampler=DomainBalancedSampler(ds.domain, p.batch_size, num_samples=n_batches * p.batch_size))
    batches = list(loader)                                     # warm-up, and the batches the step will eat
    to_z = torch.tensor([e.train.index(d) for d in splits.domains])
    step, _ = make_step(p, torch.device('cpu'))
    step(*batches[0][:2], to_z[batches[0][2]])                 # warm-up
    def load():
        for _ in loader: pass
    def train():
        for x, y, d in batches[:n_steps]: step(x, y, to_z[d])
    t_load, t_train = side_by_side(load, train, rounds)
    load_ps, train_ps = n_batches * p.batch_size / t_load, n_steps * p.batch_size / t_train
    sec = f'data ({p.name} preset, exp 7, CPU)'
    row(sec, 'loader_vs_step', f'loader vs G+S+D step, patches/s (batch {p.batch_size}, workers {p.num_workers})',
        load_ps, 'patches/s', train_ps, load_ps / train_ps, '>= 20x', show=lambda v: f'{v:,.0f}' if v >= 100 else f'{v:,.1f}',
        preset=p.name, exp=7, batch=p.batch_size, workers=p.num_workers, loader_batches=n_batches, step_batches=n_steps,
        rounds=rounds, threads=torch.get_num_threads())
    return splits, ds

def _torchio_patches(image, label, size, stride):
    "TorchIO's GridSampler over the padded volume, then the same filter: non-zero input and a foreground centre."
    import torchio as tio
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(pad_volume(image, size))[None]),
                          label=tio.LabelMap(tensor=torch.from_numpy(pad_volume(label, size))[None]))
    c = size // 2; keep = []
    for patch in tio.GridSampler(subject, size, size - stride):
        if patch['label'].data[0, c, c, c] > 0 and patch['image'].data.any():
            keep.append(patch[tio.LOCATION][:3].tolist())
    return np.array(keep, np.int64).reshape(-1, 3)

def bench_extract(image, label, p, quick, what):
    "extract_patches vs TorchIO GridSampler + the same filter on one volume; and index vs materialised patch memory."
    s, st = p.patch, p.stride
    t_ours, (starts, _) = timed(lambda: extract_patches(image, label, s, st), 1 if quick else 3)
    try: t_tio, tio_starts = timed(lambda: _torchio_patches(image, label, s, st), 1)   # one pass: seconds already
    except ImportError:
        row('patches', 'extract_vs_torchio', f'foreground patches of {what}', None, 's', goal='>= 5x',
            note='torchio not installed'); return starts
    on_grid = tio_starts[(tio_starts % st == 0).all(1) & (tio_starts < np.array(image.shape)).all(1)]
    same = {tuple(r) for r in on_grid.tolist()} == {tuple(r) for r in starts.tolist()}
    row('patches', 'extract_vs_torchio', f'foreground patches of {what} {image.shape}, size {s} stride {st}: ours vs TorchIO GridSampler '
        f'+ filter, s ({len(starts)} vs {len(tio_starts)} patches, same set on our grid: {same})',
        t_ours, 's', t_tio, t_tio / t_ours, '>= 5x', show=lambda v: f'{v:.3f}' if v < 1 else f'{v:.2f}',
        volume=what, shape=list(image.shape), patch=s, stride=st, patches=len(starts), torchio_patches=len(tio_starts),
        same_set=same, rounds_ours=1 if quick else 3, rounds_torchio=1)
    return starts

def bench_memory(rows, size, what, key, volumes=None):
    "Bytes of the patch index (N, 4) int64 (and the volumes it points into) vs the patches materialised (float32 + uint8)."
    index, patches = rows.nbytes, len(rows) * size ** 3 * (4 + 1)
    row('memory', f'memory_index_{key}', f'{what}: {len(rows):,} patches, index vs materialised patches', index, 'B', patches,
        patches / max(index, 1), show=_size, of=what, patches=len(rows), patch=size)
    if volumes:
        held = index + sum(v.nbytes for v in volumes)
        row('memory', f'memory_index_volumes_{key}', f'{what}: index + the normalized volumes PatchDataset holds vs '
            'materialised patches', held, 'B', patches, patches / held, show=_size, of=what, patches=len(rows), patch=size,
            volumes=len(volumes))

def _size(n: int) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB': return f'{n:,.0f} {unit}' if unit == 'B' else f'{n:,.1f} {unit}'
        n /= 1024

def bench_inference(p, subject, quick, dev):
    "predict_volume vs MONAI sliding_window_inference called directly, same networks, ROI, overlap and batch, per mode."
    _, nets = make_step(p, dev)
    G, S = nets['G'].eval(), nets['S'].eval()
    x = normalize_input(subject.image, subject.mask, 'max')
    def seg_only(v): return S(F.relu(G(v)))
    def seg_and_g(v): xh = F.relu(G(v)); return torch.cat([S(xh), xh], 1)
    rounds = 1 if quick else 4
    for name, predictor, with_g in (('the segmentation only', seg_only, False), ("the segmentation and G's output", seg_and_g, True)):
        got = {}
        def run_ours(): got['ours'] = predict_volume(S, x, G, roi=p.patch, overlap=p.eval_overlap, batch_size=p.batch_size,
                                                     device=dev, normalized=with_g)
        @torch.no_grad()
        def run_monai():
            out = sliding_window_inference(torch.from_numpy(x)[None, None], p.patch, p.batch_size, predictor,
                                           overlap=p.eval_overlap, mode='gaussian', sw_device=dev, device='cpu')[0]
            got['monai'] = out[:4].argmax(0).numpy().astype(np.uint8), out[4:].numpy()   # the same outputs as ours
        t_ours, t_monai = side_by_side(run_ours, run_monai, rounds, dev)
        (labels, g_out), (our_labels, our_g) = got['monai'], got['ours']
        same_labels = float((labels == our_labels).mean())
        g_diff = float(np.abs(g_out[0] - our_g).max()) if with_g else None
        agree = f'labels agree on {same_labels:.4%} of voxels'
        if with_g: agree += f', G output max abs diff {g_diff:.1e}'
        row('inference', 'inference_seg_and_g' if with_g else 'inference_seg_only',
            f'whole volume {x.shape} ({p.name} G+S, roi {p.patch}, overlap {p.eval_overlap}, batch '
            f'{p.batch_size}, {dev.type}), s: predict_volume(normalized={with_g}) vs MONAI sliding_window_inference '
            f'stitching {name} ({agree})', t_ours, 's', t_monai, t_monai / t_ours, '>= 1.0x, same output',
            shape=list(x.shape), preset=p.name, roi=p.patch, overlap=p.eval_overlap, batch=p.batch_size, device=dev.type,
            normalized=with_g, labels_agree=same_labels, g_max_abs_diff=g_diff, rounds_each=rounds, alternating=True)

def bench_train_steps(presets, quick, dev, budget_s=30.0):
    "G+S+D steps/s of each preset's networks on random patches; a preset whose first step eats the budget is skipped."
    for name, batch, amp, *det in presets:
        deterministic = det[0] if det else True
        p = get_preset(name, batch_size=batch, **({'amp': amp} if amp else {}))
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
        step, _ = make_step(p, dev, deterministic=deterministic)
        x, y, z = random_batch(p, batch, dev)
        _sync(dev); t = time.perf_counter(); step(x, y, z); _sync(dev); first = time.perf_counter() - t
        n = 1 if quick else max(1, min(5, int(budget_s / 3 / max(first, 1e-3))))
        if first > budget_s / 2: n = 0
        times = []
        for _ in range(n):
            _sync(dev); t = time.perf_counter(); step(x, y, z); _sync(dev); times.append(time.perf_counter() - t)
        secs = statistics.median(times) if times else first
        label = (f'{name} widths G{p.g_widths}/S{p.s_widths}/D{p.d_width}, batch {batch}, amp {p.amp}, {dev.type}'
                 + ('' if dev.type == 'cpu' else ', deterministic' if deterministic else ', cuDNN autotuned'))
        ps = batch / secs
        if dev.type == 'cuda': label += f', peak {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB'
        ref = dev.type == 'cuda' and name == 'paper'
        dtype = conv_dtype(p.amp, dev)
        rate = tflops_text(step_flops(p, 7, batch)['total'], 1 / secs, dev, dtype)
        tf, pct, dtype = percent_of_peak(step_flops(p, 7, batch)['total'], 1 / secs, dev, dtype)
        key = f'step_{name}_b{batch}_{dev.type}' + ('' if dev.type == 'cpu' else f"_{p.amp}_{'det' if deterministic else 'autotuned'}")
        row('training step', key, f'{label}: G+S+D patches/s ({f"{n} timed steps" if n else "its first step only: over the time budget"}; {rate})' + (' vs the paper (2x RTX 2080 Ti)' if ref else ''),
            ps, 'patches/s', PAPER_PATCHES_PER_S if ref else None, ps / PAPER_PATCHES_PER_S if ref else None,
            show=lambda v: f'{v:,.2f}' if v >= 1 or not ref else f'{v:.1f}', preset=name, g_widths=list(p.g_widths),
            s_widths=list(p.s_widths), d_width=p.d_width, batch=batch, amp=p.amp, device=dev.type, timed_steps=n,
            first_step_s=first, secs_per_step=secs, tflops=tf, percent_of_peak=pct, peak_dtype=dtype,
            deterministic=deterministic if dev.type == 'cuda' else None, threads=torch.get_num_threads(),
            peak_gib=torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == 'cuda' else None)
        del step

def conv_dtype(amp: str, dev) -> str:
    "The data type the step's convolutions run in: autocast's; else tf32 on a GPU where cuDNN may use it (PyTorch's default)."
    if amp == 'auto': amp = 'fp16' if dev.type == 'cuda' else 'off'
    if amp != 'off': return amp
    return 'tf32' if dev.type == 'cuda' and torch.backends.cudnn.allow_tf32 else 'fp32'

def percent_of_peak(flops: float, steps_per_s: float, dev, dtype: str) -> tuple[float, float | None, str]:
    "(TFLOP/s, % of the device's dense peak or None, the data type compared with): tf32 falls back to fp32 where a GPU has none."
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else None
    if name and dtype == 'tf32' and peak_tflops(name, 'tf32') is None: dtype = 'fp32'
    return (*achieved(flops, steps_per_s, name, dtype), dtype)

def tflops_text(flops: float, steps_per_s: float, dev, dtype: str) -> str:
    "'x.xx TFLOP/s' and, on a GPU, its share of the peak ('unknown' if the device is not in advnorm.flops.PEAK_TFLOPS)."
    tf, pct, dtype = percent_of_peak(flops, steps_per_s, dev, dtype)
    if dev.type != 'cuda': return f'{tf:.6f} TFLOP/s'
    return f'{tf:.2f} TFLOP/s, ' + (f'{pct:.1f} % of the {dtype} peak' if pct is not None else '% of peak unknown')

def _load() -> list[float]:
    "The 1, 5 and 15 minute load averages (empty where the system has none)."
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, 'getloadavg') else []

def cpu_model() -> str:
    "The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."
    try: return next(l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or platform.machine()

def machine_facts() -> dict:
    "What the timings depend on besides the code: CPU, cores, torch and its threads, the OpenMP settings, the GPU."
    return dict(cpu_model=cpu_model(), arch=platform.machine(), cores=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__, threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS', 'unset'),
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY', 'unset'),
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)

def git_facts() -> dict:
    "The commit the run measured, and the files of the measured code (advnorm/, benchmarks/*.py) that differed from it."
    def git(*a):
        try: return subprocess.run(['git', *a], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                                   timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError): return ''
    changed = [l[3:] for l in git('status', '--porcelain', '--untracked-files=no', '--', 'advnorm', 'benchmarks/*.py').splitlines()]
    return dict(commit=git('rev-parse', 'HEAD') or None, dirty=bool(changed), changed=changed)

def machine() -> str:
    f = machine_facts(); load = ', '.join(f'{v:.1f}' for v in _load()) or '?'
    return (f"{f['cpu_model']} ({f['arch']}), {f['cores']} CPUs, torch {f['torch']} with {f['threads']} threads, "
            f"OMP_WAIT_POLICY {f['omp_wait_policy']}, load average at start {load}" + (f", GPU {f['gpu']}" if f['gpu'] else ''))

def _now() -> str: return datetime.datetime.now().astimezone().isoformat(timespec='seconds')

class Record:
    "The run's record (--json): its command, machine, commit and load before; `save` adds the figures and the load after."
    def __init__(self, path, mode: str, argv: list[str]):
        self.path, self.t0 = (Path(path) if path else None), time.time()
        self.head = dict(record='benchmarks/run.py', mode=mode, command=' '.join(['python benchmarks/run.py', *argv]),
                         started=_now(), date=datetime.date.today().isoformat(), machine=machine_facts(), git=git_facts(),
                         load_before=_load())
    def save(self, body: dict, complete: bool = True) -> dict:
        out = self.head | dict(finished=_now(), seconds=round(time.time() - self.t0, 1), load_after=_load(), complete=complete) | body
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + '.tmp'); tmp.write_text(json.dumps(out, indent=1, default=str) + '\n')
            tmp.replace(self.path)
        return out

def print_table():
    head = ('section', 'measurement', 'ours', 'other', 'ratio', 'goal')
    print('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
    for r in ROWS: print('| ' + ' | '.join((r['section'], r['what'], r['text']['ours'], r['text']['other'], r['text']['ratio'], r['goal'])) + ' |')

# the paper preset's step on a GPU: (preset, batch, amp, deterministic)
GPU_STEPS = [('paper', 16, amp, det) for det in (True, False) for amp in ('off', 'fp16', 'bf16')]

def bench_gpu(p, quick, dev, t0, rec=None):
    "The GPU sections alone: whole-volume inference and the paper preset's step (AMP off/fp16/bf16, deterministic or not)."
    splits = load_experiment_data(get_experiment(7), p)
    bench_inference(p, next(s for s in splits.subjects if s.domain == 'MRBrainS'), quick, dev)
    if rec: rec.save(dict(quick=quick, sections_done=['inference'], rows=ROWS), complete=False)
    bench_train_steps(GPU_STEPS + [('paper', 64, 'bf16', False)], quick, dev, budget_s=120)
    print_table(); print(f'\n{len(ROWS)} rows in {time.time() - t0:.0f} s')
    return rec.save(dict(quick=quick, sections_done=['inference', 'training step'], rows=ROWS)) if rec else None

# --- the step's throughput by width and thread count, on this CPU -------------------------------------------------
STEP_WIDTHS = [((8, 16, 32), 8), ((16, 32, 64), 16)]   # (G and S widths, D width): the quick preset's, then twice as wide
STEP_THREADS = (1, 2)

def bench_step_throughput(quick: bool, steps: int, budget_s: float, warmup: int = 1) -> dict:
    """Patches/s of exp 7's G+S+D step (quick preset; 16³ patches, batch 4 with --quick) on the CPU, for each width pair of
    STEP_WIDTHS with 1 and 2 threads. The step is `make_step`'s: the library's build_networks, build_optimizers,
    make_autocast, gs_step and d_step, forward + backward + optimiser step, with train()'s per-step host syncs.
    `warmup` untimed steps per setting (4 settings: 2 untimed steps per set of networks; oneDNN's kernels and Adam's
    state are made on the first), then up to `steps` timed rounds, one step of each setting per round in
    alternating order (a drift in the machine's load falls on every setting alike), fewer once `budget_s` seconds
    (warm-up included) are spent, never none; the median step of each setting."""
    cpu, threads0, t0 = torch.device('cpu'), torch.get_num_threads(), time.time()
    base = get_preset('quick', **({'patch': 16, 'batch_size': 4} if quick else {}))
    cases = []
    for widths, d_width in STEP_WIDTHS:
        p = get_preset(base, g_widths=widths, s_widths=widths, d_width=d_width)
        step, _ = make_step(p, cpu, sync=True)               # one set of networks and optimisers per width pair
        batch = random_batch(p, p.batch_size, cpu)
        cases += [dict(widths=widths, d_width=d_width, threads=t, step=step, batch=batch, times=[]) for t in STEP_THREADS]
    print(f'step throughput: exp 7, {base.name} preset, batch {base.batch_size}, {base.patch}³ patches, amp '
          f'{base.amp} ({conv_dtype(base.amp, cpu)} on the CPU), {base.optimizer}; {warmup} untimed warm-up step(s) per '
          f'setting, then up to {steps} timed step(s) each in alternating rounds (budget {budget_s:.0f} s); '
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}", flush=True)
    try:
        for c in cases:                                      # warm-up: oneDNN picks its kernels on the first calls
            torch.set_num_threads(c['threads'])
            for _ in range(warmup): c['step'](*c['batch'])
        t_timed = time.time()
        for r in range(steps):   # stop before a round that, as long as the ones before, would end past the budget
            if r and time.time() + (time.time() - t_timed) / r > t0 + budget_s: break
            for c in cases[::1 if r % 2 == 0 else -1]:
                torch.set_num_threads(c['threads'])
                t = time.perf_counter(); c['step'](*c['batch']); c['times'].append(time.perf_counter() - t)
    finally: torch.set_num_threads(threads0)
    rows = [dict(g_s_widths=list(c['widths']), d_width=c['d_width'], threads=c['threads'], steps=len(c['times']),
                 secs_per_step=statistics.median(c['times']), patches_per_s=base.batch_size / statistics.median(c['times']))
            for c in cases]
    rate = {(tuple(r['g_s_widths']), r['threads']): r['patches_per_s'] for r in rows}
    (w1, _), (w2, _) = STEP_WIDTHS
    ratios = ([(f'{w2} / {w1}, {t} thread{"s" * (t > 1)}', rate[w2, t] / rate[w1, t]) for t in STEP_THREADS]
              + [(f'{STEP_THREADS[1]} threads / {STEP_THREADS[0]} thread, {w}', rate[w, STEP_THREADS[1]] / rate[w, STEP_THREADS[0]])
                 for w, _ in STEP_WIDTHS])
    out = dict(preset=base.name, patch=base.patch, batch=base.batch_size, warmup=warmup, rows=rows,
               ratios=[dict(what=w, ratio=x) for w, x in ratios])
    print_step_throughput(out)
    return out

def print_step_throughput(out: dict):
    print('\n| G, S widths | D width | threads | patches/s | s per step (median) | timed steps |\n|---|---|---|---|---|---|')
    for r in out['rows']:
        print(f"| {tuple(r['g_s_widths'])} | {r['d_width']} | {r['threads']} | {r['patches_per_s']:,.2f} | "
              f"{r['secs_per_step']:.2f} | {r['steps']} |")
    print('\nratios, measured in the same run:')
    for r in out['ratios']: print(f"  {r['what']} = {r['ratio']:.2f}x")
    load = ', '.join(f'{v:.1f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else '?'
    print(f'\nThese are timings of this machine under its current load (load average now {load}, {os.cpu_count()} CPUs), '
          'not a property of the code. When other processes compete for the cores, 2 threads can run much slower than '
          '1 (each OpenMP thread waits at barriers for one that was descheduled, spinning unless OMP_WAIT_POLICY=PASSIVE): '
          'on a shared small CPU, 1 thread is the safer choice.')

# --- levers: what makes the paper preset's step fast on a GPU ----------------------------------------------------
LEVERS = [   # (row, settings changed from the baseline, needs CUDA)
    ("baseline: the step as train() runs it (the preset's AMP, deterministic, host syncs for its log each step)", {}, False),
    ('fp32 (amp off; convolutions in tf32 where cuDNN may)', {'amp': 'off'}, False),
    ('bf16 autocast (no GradScaler)', {'amp': 'bf16'}, False),
    ('cuDNN autotune (deterministic=False: cudnn.benchmark)', {'deterministic': False}, True),
    ('channels_last_3d inputs and weights', {'channels_last': True}, False),
    ('fused optimizer (fused=True)', {'fused': True}, False),
    ('for-loop optimizer (foreach=False; foreach is the default on CUDA)', {'foreach': False}, False),
    ('no .item() / host sync per step', {'sync': False}, False),
    ("train(amp='bf16', deterministic=False): the trainer's fast settings today", {'amp': 'bf16', 'deterministic': False}, False),
    ("torch.compile, mode 'default'", {'compile': 'default'}, False),
    ("CUDA graphs: torch.compile, mode 'reduce-overhead'", {'compile': 'reduce-overhead'}, True),
    ("torch.compile, mode 'max-autotune-no-cudagraphs'", {'compile': 'max-autotune-no-cudagraphs'}, False),
]
COMBINED = 'all helpful levers together'

class OverBudget(Exception): "A lever ran past its time cap."

def _alarm(seconds: float):
    "Raise OverBudget in this (main) thread after `seconds`; 0 cancels. A no-op where there is no SIGALRM."
    if not hasattr(signal, 'setitimer'): return
    def fire(*_): raise OverBudget(f'over its time cap of {seconds:.0f} s')
    signal.signal(signal.SIGALRM, fire); signal.setitimer(signal.ITIMER_REAL, max(seconds, 0))

def time_step(p, dev, settings: dict, quick: bool, target_s: float = 2.0) -> dict:
    "Build the step with `settings`, run its warm-up steps (compilation, autotuning) and time it on one random batch."
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
    try: from torch._dynamo.utils import counters; counters.clear()   # inductor counts the graphs it ran without CUDA graphs
    except Exception: counters = None
    step, nets = make_step(p, dev, **settings)
    x, y, z = random_batch(p, p.batch_size, dev)
    if settings.get('channels_last'): x = x.contiguous(memory_format=torch.channels_last_3d)
    warm = 3 if settings.get('compile') else 2     # CUDA graph trees record on the 2nd call, replay from the 3rd
    _sync(dev); t = time.perf_counter()
    for _ in range(warm): step(x, y, z)
    _sync(dev); t_warm = time.perf_counter() - t
    t = time.perf_counter(); step(x, y, z); _sync(dev); one = time.perf_counter() - t
    n = 1 if quick else max(3, min(30, round(target_s / max(one, 1e-3))))
    t = time.perf_counter()
    for _ in range(n): step(x, y, z)
    _sync(dev); secs = (time.perf_counter() - t) / n
    return dict(secs=secs, steps=n, setup_s=max(t_warm - warm * secs, 0.0),
                cudagraph_skips=counters['inductor'].get('cudagraph_skips', 0) if counters is not None else 0,
                peak_gib=torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == 'cuda' else None,
                deterministic=torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark)

def _release(dev):
    "Forget compiled graphs and cached blocks between levers, so that each starts from the same state."
    import gc; gc.collect()
    try: torch._dynamo.reset()
    except Exception: pass
    if dev.type == 'cuda': torch.cuda.empty_cache()

def profile_step(p, dev, settings: dict, steps: int = 5, top: int = 15) -> list[dict]:
    "torch.profiler over `steps` steps (after warm-up): the `top` CUDA kernels by GPU time (on the CPU: the top operators)."
    from torch.profiler import profile, ProfilerActivity
    from torch.autograd import DeviceType
    step, _ = make_step(p, dev, **settings)
    x, y, z = random_batch(p, p.batch_size, dev)
    if settings.get('channels_last'): x = x.contiguous(memory_format=torch.channels_last_3d)
    for _ in range(3): step(x, y, z)
    _sync(dev)
    cuda = dev.type == 'cuda'
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(steps): step(x, y, z)
        _sync(dev)
    def own(e): return (getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)) if cuda else e.self_cpu_time_total
    events = [e for e in prof.key_averages() if (e.device_type == DeviceType.CUDA) == cuda and own(e) > 0]
    total = sum(own(e) for e in events) or 1
    return [dict(name=e.key, calls=e.count // steps, ms_per_step=own(e) / 1e3 / steps, percent=100 * own(e) / total)
            for e in sorted(events, key=own, reverse=True)[:top]]

def _combine(rows: list[dict], base: dict) -> dict | None:
    "The settings of every lever that beat the baseline by more than 2 %; of two that set the same thing, the faster."
    helpful = sorted((r for r in rows if r['lever'] and r.get('patches_per_s') and r['patches_per_s'] > 1.02 * base['patches_per_s']),
                     key=lambda r: r['patches_per_s'])      # slowest first: a faster lever's value wins
    if not helpful: return None
    return {k: v for r in helpful for k, v in r['settings'].items()}

def bench_levers(quick: bool, dev, budget_s: float, compile_ok: bool, profile: bool, t0: float) -> dict:
    "The paper preset's step (smoke widths with --quick) as the trainer runs it and with each lever; a markdown table."
    p = get_preset('smoke', patch=16) if quick else get_preset('paper')   # --quick: smoke widths on 16³ patches
    flops = step_flops(p, 7, p.batch_size)['total']
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or platform.machine()
    print(f'levers: {p.name} preset, exp 7, batch {p.batch_size}, {p.patch}³ patches, {dev.type} ({name}); '
          f'{flops / 1e12:.4f} TFLOP per step (advnorm.flops.step_flops); section budget {budget_s:.0f} s', flush=True)
    deadline, reserve = time.time() + budget_s, (0 if quick else 60)   # kept for the combined row and the profile
    cap_plain, cap_compile = (60, 120) if quick else (45, 100)
    rows = []
    def run_row(label, settings, needs_cuda, lever=True, cap=None):
        r = dict(setting=label, settings=settings, lever=lever)
        cap = cap or (cap_compile if settings.get('compile') else cap_plain)
        cap = min(cap, deadline - time.time() - (reserve if lever else 0))
        amp = settings.get('amp') or p.amp
        if needs_cuda and dev.type != 'cuda': r['note'] = 'needs CUDA'
        elif settings.get('compile') and not compile_ok: r['note'] = 'skipped (--no-compile)'
        elif cap < 5: r['note'] = "skipped: over the section's time budget"
        else:
            try:
                _alarm(cap)
                m = time_step(p, dev, settings, quick)
                _alarm(0)
                tf, pct, dt = percent_of_peak(flops, 1 / m['secs'], dev, conv_dtype(amp, dev))
                r.update(patches_per_s=p.batch_size / m['secs'], tflops=tf, percent_of_peak=pct, peak_dtype=dt,
                         peak_gib=m['peak_gib'], deterministic=m['deterministic'], setup_s=m['setup_s'], steps=m['steps'])
                if settings.get('compile') == 'reduce-overhead' and m['cudagraph_skips']:
                    r['note'] = f"inductor ran {m['cudagraph_skips']} graph(s) without CUDA graphs (its reasons are in the log)"
            except BaseException as err:   # OverBudget, CUDA errors, compile failures, KeyboardInterrupt reach here too
                _alarm(0)
                if isinstance(err, KeyboardInterrupt): raise
                r['note'] = f'{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ""}'
            finally: _release(dev)
        rows.append(r)
        print(f"  {time.time() - t0:6.0f} s  {label}: " + (f"{r['patches_per_s']:,.1f} patches/s" if 'patches_per_s' in r else r['note']), flush=True)
        return r
    for label, settings, needs_cuda in LEVERS: run_row(label, settings, needs_cuda, lever=bool(settings) and len(settings) == 1)
    base = rows[0]
    combined = _combine(rows, base) if base.get('patches_per_s') else None
    if combined: run_row(f"{COMBINED}: {', '.join(f'{k}={v}' for k, v in combined.items())}", combined, False, lever=False,
                         cap=cap_compile if combined.get('compile') else cap_plain)
    else: rows.append(dict(setting=COMBINED, settings={}, lever=False, note='no lever beat the baseline by more than 2 %'))
    out = dict(preset=p.name, batch=p.batch_size, device=name, torch=torch.__version__, flops_per_step=flops, rows=rows)
    print_levers(out)
    timed = [r for r in rows if r.get('patches_per_s')]
    if profile and timed:
        best = max(timed, key=lambda r: r['patches_per_s'])
        try:
            _alarm(max(deadline - time.time(), 20))
            out['profile'] = dict(setting=best['setting'], kernels=profile_step(p, dev, best['settings']))
            _alarm(0)
            print_profile(out['profile'], dev)
        except Exception as err:
            _alarm(0); out['profile'] = dict(setting=best['setting'], error=f'{type(err).__name__}: {err}')
            print(f"\nprofile of '{best['setting']}' failed: {out['profile']['error']}")
        finally: _release(dev)
    return out

def print_levers(out: dict):
    head = ('setting', 'patches/s', 'vs baseline', 'TFLOP/s', '% of peak', 'peak GPU memory', 'deterministic',
            'compile / autotune s', 'timed steps', 'note')
    print('\n| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
    base = out['rows'][0].get('patches_per_s')
    for r in out['rows']:
        if 'patches_per_s' not in r: print(f"| {r['setting']} |" + ' |' * (len(head) - 2) + f" {r['note']} |"); continue
        pct = (f"{r['percent_of_peak']:.1f} ({r['peak_dtype']})" if r['percent_of_peak'] is not None
               else 'unknown' if r['peak_gib'] is not None else '—')
        det = ('yes' if r['deterministic'] else 'no') + (' (flags; compiled kernels not checked)'
                                                         if r['settings'].get('compile') and r['deterministic'] else '')
        print(f"| {r['setting']} | {r['patches_per_s']:,.1f} | {r['patches_per_s'] / base:.2f}x | {r['tflops']:.3f} | {pct} | "
              + (f"{r['peak_gib']:.1f} GiB" if r['peak_gib'] is not None else '—')
              + f" | {det} | {r['setup_s']:.1f} | {r['steps']} | {r.get('note', '')} |")
    print(f"\n{out['flops_per_step'] / 1e12:.4f} TFLOP per step (advnorm.flops.step_flops); % of peak: of the device's dense peak "
          "for the data type the convolutions ran in (advnorm.flops.PEAK_TFLOPS). compile / autotune s: the warm-up steps' "
          "time beyond that of timed steps; a compiled row after another reuses inductor's caches of the earlier ones.")

def print_profile(prof: dict, dev):
    what = 'CUDA kernels by GPU time' if dev.type == 'cuda' else 'operators by CPU time (no GPU: the code path only)'
    print(f"\ntorch.profiler, '{prof['setting']}': the top {len(prof['kernels'])} {what}, per step\n")
    print('| kernel | calls per step | ms per step | % of the total |\n|---|---|---|---|')
    for k in prof['kernels']:
        print(f"| {k['name'][:110].replace('|', '/')} | {k['calls']} | {k['ms_per_step']:.3f} | {k['percent']:.1f} |")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='tiny sizes, seconds; for CI (figures meaningless)')
    ap.add_argument('--device', default='auto', help="where inference and the preset steps run: 'auto', 'cpu', 'cuda'")
    ap.add_argument('--gpu-only', action='store_true', help='with --device cuda: only the GPU sections (inference, preset steps)')
    ap.add_argument('--levers', action='store_true', help="only the speed levers of the paper preset's step (smoke widths with --quick)")
    ap.add_argument('--no-compile', action='store_true', help='with --levers: skip the torch.compile levers (slow to compile on a CPU)')
    ap.add_argument('--profile', action='store_true', help='with --levers: the top 15 CUDA kernels of the fastest setting (torch.profiler)')
    ap.add_argument('--budget', type=float, default=None,
                    help='with --levers: seconds for the whole section (default 240; 120 with --quick); with --step-throughput: '
                         'seconds after which no further timed round starts (default 60)')
    ap.add_argument('--step-throughput', action='store_true',
                    help="only the patches/s of exp 7's training step on the CPU, G and S widths (8, 16, 32) and (16, 32, 64), 1 and 2 threads")
    ap.add_argument('--steps', type=int, default=None, help='with --step-throughput: timed steps per setting (default 3; 1 with --quick)')
    ap.add_argument('--json', default=None, help="also write the run's record (figures, machine, load, commit) to this JSON file")
    args = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(args)
    if a.step_throughput and a.device not in ('auto', 'cpu'): ap.error(f'--step-throughput runs on the CPU (threads); got --device {a.device}')
    t0, dev = time.time(), get_device(a.device)
    print(f'machine: {machine()}', flush=True)
    if a.gpu_only and dev.type != 'cuda': ap.error('--gpu-only needs --device cuda (or auto on a machine with a GPU)')
    if (a.no_compile or a.profile) and not a.levers: ap.error('--no-compile and --profile go with --levers')
    if a.budget and not (a.levers or a.step_throughput): ap.error('--budget goes with --levers or --step-throughput')
    if a.steps is not None and not a.step_throughput: ap.error('--steps goes with --step-throughput')
    if a.step_throughput:
        if a.levers or a.gpu_only: ap.error('--step-throughput is a mode of its own: not with --levers or --gpu-only')
        steps = a.steps if a.steps is not None else 1 if a.quick else 3
        if steps < 1: ap.error(f'--steps {steps}: expected at least 1')
        rec = Record(a.json, 'step-throughput', args)
        out = rec.save(bench_step_throughput(a.quick, steps, a.budget or 60) | dict(quick=a.quick, steps_asked=steps, budget_s=a.budget or 60))
        print(f'\nstep throughput in {time.time() - t0:.0f} s' + (' (--quick: 16³ patches, batch 4, figures not meaningful)' if a.quick else ''))
        return out
    if a.levers:
        rec = Record(a.json, 'levers', args)
        out = rec.save(bench_levers(a.quick, dev, a.budget or (120 if a.quick else 240), not a.no_compile, a.profile, t0) | dict(quick=a.quick))
        print(f'\nlevers section in {time.time() - t0:.0f} s' + (' (--quick: smoke widths, figures not meaningful)' if a.quick else ''))
        return out
    p = get_preset('smoke' if a.quick else 'quick')
    rec = Record(a.json, 'gpu-only' if a.gpu_only else 'default', args)
    if a.gpu_only: return bench_gpu(p, a.quick, dev, t0, rec)
    done = []
    def section(name):   # the record so far, rewritten after each section: a run cut short keeps what it measured
        done.append(name); rec.save(dict(quick=a.quick, preset=p.name, sections_done=done, rows=ROWS), complete=False)
    def rss(key, what): row('memory', key, what, peak_rss_mib(), 'MiB', show=lambda v: f'{v:,.0f} MiB')
    splits, ds = bench_loader(p, a.quick)
    rss('rss_after_loader', 'peak RSS after the loader section')
    bench_memory(ds.rows, p.patch, f'{p.name} preset exp 7 training split', 'training_split', list(ds.images.values()))
    section('data')
    if a.quick: image, label, what = splits.subjects[0].image, splits.subjects[0].label, f'one {p.spacing_mm:g} mm volume'
    else: (image, label, _), what = make_subject('iSEG', 1, 0, voxel_mm=1.0), 'one 1 mm volume'
    starts = bench_extract(image, label, p, a.quick, what)
    bench_memory(np.column_stack([np.zeros(len(starts), np.int64), starts]), p.patch, what, 'volume')
    del image, label
    rss('rss_after_patches', 'peak RSS after the patch sections')
    section('patches')
    test = next(s for s in splits.subjects if s.domain == 'MRBrainS')
    bench_inference(p, test, a.quick, dev)
    rss('rss_after_inference', 'peak RSS after inference')
    section('inference')
    presets = [('smoke', 4, None), ('quick', 8, None)] + ([] if a.quick else [('paper', 2, None)])
    bench_train_steps(presets, a.quick, torch.device('cpu'))
    if dev.type == 'cuda':
        bench_train_steps(GPU_STEPS, a.quick, dev, budget_s=120)
    rss('rss_total', 'peak RSS of the whole run')
    print_table()
    done.append('training step')
    out = rec.save(dict(quick=a.quick, preset=p.name, sections_done=done, rows=ROWS))
    print(f"\nload average before {', '.join(map(str, out['load_before']))}, after {', '.join(map(str, out['load_after']))}")
    print(f'\n{len(ROWS)} rows in {time.time() - t0:.0f} s' + (' (--quick: tiny sizes, figures not meaningful)' if a.quick else ''))
    return out

if __name__ == '__main__': main()
