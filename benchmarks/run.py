"""Throughput and memory of advnorm against the alternatives, measured side by side in one run and printed as ratios.

    python benchmarks/run.py            # a few minutes on a 2-core CPU
    python benchmarks/run.py --quick    # seconds: tiny sizes, a smoke test of this script (CI); the figures mean nothing

Timings on shared machines are noisy, so each pair is timed in alternating rounds in the same process and the table
reports the ratio of the medians. Sections: the data loader against the training step it feeds, our foreground patch
extraction against TorchIO's GridSampler with the same filter, the patch index against materialised patches,
whole-volume inference against MONAI's sliding_window_inference called directly, and the G+S+D step of each preset.
"""
from __future__ import annotations
import argparse, os, platform, resource, statistics, sys, time
import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch.utils.data import DataLoader

from advnorm.core import seed_everything, get_device
from advnorm.data import PatchDataset, DomainBalancedSampler, extract_patches, pad_volume, normalize_input
from advnorm.evaluate import predict_volume
from advnorm.experiments import get_experiment, get_preset
from advnorm.synthetic import make_subject
from advnorm.train import build_networks, build_optimizers, make_autocast, gs_step, d_step, load_experiment_data

PAPER_PATCHES_PER_S = 27_647 * 0.6 * 50 / (8 * 3600)   # the paper: 60 % of 27,647 patches x 50 epochs in 8 h, 2 GPUs
ROWS = []

def row(section, what, ours, other='', ratio=None, goal=''):
    "Add one line to the table (numbers already formatted, ratio as a float or None)."
    ROWS.append((section, what, ours, other, '' if ratio is None else f'{ratio:.1f}x', goal))

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
def make_step(p, dev, exp=7, deterministic=True):
    "A function doing one joint-phase iteration of the trainer on a batch: the G+S update, then the D update."
    e = get_experiment(exp); seed_everything(0, deterministic)
    nets = {k: m.to(dev).train() for k, m in build_networks(e, p).items()}
    opts = build_optimizers(nets, p)
    autocast, scaled = make_autocast(p.amp, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=scaled)   # a pass-through unless fp16
    G, S, D = nets['G'], nets['S'], nets['D']
    def step(x, y, z):
        D.requires_grad_(False)                               # D is only a critic in the G+S update
        gs = gs_step(G, S, D, x, y, z, warmup=False, identity=False, lambda_adv=p.lambda_adv, autocast=autocast)
        for k in 'GS': opts[k].zero_grad(set_to_none=True)
        scaler.scale(gs['total']).backward(); scaler.step(opts['G']); scaler.step(opts['S'])
        D.requires_grad_(True); opts['D'].zero_grad(set_to_none=True)
        scaler.scale(d_step(D, x, gs['x_hat'], z, autocast)).backward(); scaler.step(opts['D']); scaler.update()
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
    row(sec, f'loader vs G+S+D step, patches/s (batch {p.batch_size}, workers {p.num_workers})',
        f'{load_ps:,.0f}', f'{train_ps:,.1f}', load_ps / train_ps, '>= 20x')
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
        row('patches', f'foreground patches of {what}', 'torchio not installed', '', None, '>= 5x'); return starts
    on_grid = tio_starts[(tio_starts % st == 0).all(1) & (tio_starts < np.array(image.shape)).all(1)]
    same = {tuple(r) for r in on_grid.tolist()} == {tuple(r) for r in starts.tolist()}
    row('patches', f'foreground patches of {what} {image.shape}, size {s} stride {st}: ours vs TorchIO GridSampler '
        f'+ filter, s ({len(starts)} vs {len(tio_starts)} patches, same set on our grid: {same})',
        f'{t_ours:.3f}', f'{t_tio:.2f}', t_tio / t_ours, '>= 5x')
    return starts

def bench_memory(rows, size, what, volumes=None):
    "Bytes of the patch index (N, 4) int64 (and the volumes it points into) vs the patches materialised (float32 + uint8)."
    index, patches = rows.nbytes, len(rows) * size ** 3 * (4 + 1)
    row('memory', f'{what}: {len(rows):,} patches, index vs materialised patches', _size(index), _size(patches),
        patches / max(index, 1), '')
    if volumes:
        held = index + sum(v.nbytes for v in volumes)
        row('memory', f'{what}: index + the normalized volumes PatchDataset holds vs materialised patches', _size(held),
            _size(patches), patches / held, '')

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
    for name, predictor, with_g in (('the segmentation only', seg_only, False), ("the segmentation and G's output", seg_and_g, True)):
        got = {}
        def run_ours(): got['ours'] = predict_volume(S, x, G, roi=p.patch, overlap=p.eval_overlap, batch_size=p.batch_size,
                                                     device=dev, normalized=with_g)
        @torch.no_grad()
        def run_monai():
            out = sliding_window_inference(torch.from_numpy(x)[None, None], p.patch, p.batch_size, predictor,
                                           overlap=p.eval_overlap, mode='gaussian', sw_device=dev, device='cpu')[0]
            got['monai'] = out[:4].argmax(0).numpy().astype(np.uint8), out[4:].numpy()   # the same outputs as ours
        t_ours, t_monai = side_by_side(run_ours, run_monai, 1 if quick else 4, dev)
        (labels, g_out), (our_labels, our_g) = got['monai'], got['ours']
        agree = f'labels agree on {(labels == our_labels).mean():.4%} of voxels'
        if with_g: agree += f', G output max abs diff {np.abs(g_out[0] - our_g).max():.1e}'
        row('inference', f'whole volume {x.shape} ({p.name} G+S, roi {p.patch}, overlap {p.eval_overlap}, batch '
            f'{p.batch_size}, {dev.type}), s: predict_volume(normalized={with_g}) vs MONAI sliding_window_inference '
            f'stitching {name} ({agree})', f'{t_ours:.2f}', f'{t_monai:.2f}', t_monai / t_ours, '>= 1.0x, same output')

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
        row('training step', f'{label}: G+S+D patches/s ({n or 1} timed steps)' + (' vs the paper (2x RTX 2080 Ti)' if ref else ''),
            f'{ps:,.2f}', f'{PAPER_PATCHES_PER_S:.1f}' if ref else '', ps / PAPER_PATCHES_PER_S if ref else None, '')
        del step

def machine() -> str:
    load = ', '.join(f'{v:.1f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else '?'
    return (f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} with '
            f'{torch.get_num_threads()} threads, load average at start {load}'
            + (f', GPU {torch.cuda.get_device_name()}' if torch.cuda.is_available() else ''))

def print_table():
    head = ('section', 'measurement', 'ours', 'other', 'ratio', 'goal')
    print('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
    for r in ROWS: print('| ' + ' | '.join(r) + ' |')

# the paper preset's step on a GPU: (preset, batch, amp, deterministic)
GPU_STEPS = [('paper', 16, amp, det) for det in (True, False) for amp in ('off', 'fp16', 'bf16')]

def bench_gpu(p, quick, dev, t0):
    "The GPU sections alone: whole-volume inference and the paper preset's step (AMP off/fp16/bf16, deterministic or not)."
    splits = load_experiment_data(get_experiment(7), p)
    bench_inference(p, next(s for s in splits.subjects if s.domain == 'MRBrainS'), quick, dev)
    bench_train_steps(GPU_STEPS + [('paper', 64, 'bf16', False)], quick, dev, budget_s=120)
    print_table(); print(f'\n{len(ROWS)} rows in {time.time() - t0:.0f} s')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='tiny sizes, seconds; for CI (figures meaningless)')
    ap.add_argument('--device', default='auto', help="where inference and the preset steps run: 'auto', 'cpu', 'cuda'")
    ap.add_argument('--gpu-only', action='store_true', help='with --device cuda: only the GPU sections (inference, preset steps)')
    a = ap.parse_args(argv)
    t0, dev = time.time(), get_device(a.device)
    print(f'machine: {machine()}', flush=True)
    if a.gpu_only and dev.type != 'cuda': ap.error('--gpu-only needs --device cuda (or auto on a machine with a GPU)')
    p = get_preset('smoke' if a.quick else 'quick')
    if a.gpu_only: return bench_gpu(p, a.quick, dev, t0)
    splits, ds = bench_loader(p, a.quick)
    row('memory', 'peak RSS after the loader section', f'{peak_rss_mib():,.0f} MiB')
    bench_memory(ds.rows, p.patch, f'{p.name} preset exp 7 training split', list(ds.images.values()))
    if a.quick: image, label, what = splits.subjects[0].image, splits.subjects[0].label, f'one {p.spacing_mm:g} mm volume'
    else: (image, label, _), what = make_subject('iSEG', 1, 0, voxel_mm=1.0), 'one 1 mm volume'
    starts = bench_extract(image, label, p, a.quick, what)
    bench_memory(np.column_stack([np.zeros(len(starts), np.int64), starts]), p.patch, what)
    del image, label
    row('memory', 'peak RSS after the patch sections', f'{peak_rss_mib():,.0f} MiB')
    test = next(s for s in splits.subjects if s.domain == 'MRBrainS')
    bench_inference(p, test, a.quick, dev)
    row('memory', 'peak RSS after inference', f'{peak_rss_mib():,.0f} MiB')
    presets = [('smoke', 4, None), ('quick', 8, None)] + ([] if a.quick else [('paper', 2, None)])
    bench_train_steps(presets, a.quick, torch.device('cpu'))
    if dev.type == 'cuda':
        bench_train_steps(GPU_STEPS, a.quick, dev, budget_s=120)
    row('memory', 'peak RSS of the whole run', f'{peak_rss_mib():,.0f} MiB')
    print_table()
    print(f'\n{len(ROWS)} rows in {time.time() - t0:.0f} s' + (' (--quick: tiny sizes, figures not meaningful)' if a.quick else ''))

if __name__ == '__main__': main()
