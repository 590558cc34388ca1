"""Write the README's Performance section from the committed benchmark records (benchmarks/records/), so that no number there is typed.

    python tools/readme_performance.py          # rewrite the block between the README's performance markers
    python tools/readme_performance.py --check  # exit 1 if the README's block differs from what the records give (tests/test_readme.py)

The block is made from three records, the newest of each kind: the CPU benchmark (`benchmarks/run.py --json`, default
mode, not `--quick`), its `--step-throughput` run, and the GPU record (`record: gpu`, the figures of a GPU log in
benchmarks/*.md with a pointer to each). Every number in the block is read from one of them or computed from their
figures; the block names each record with its date and the machine's load. It reads JSON only (no torch): fast.
"""
from __future__ import annotations
import argparse, json, math, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT/'benchmarks'/'records'
BEGIN, END = '<!-- performance: written by tools/readme_performance.py from benchmarks/records/ -->', '<!-- performance: end -->'

# --- numbers as the README writes them ----------------------------------------------------------------------------------
def rate(v: float) -> str:
    "A speed: no decimals from 100, one from 1, two significant digits below (0.48, 0.041)."
    if v >= 100: return f'{v:,.0f}'
    if v >= 1: return f'{v:.1f}'
    return f'{v:.{max(2, 1 - math.floor(math.log10(v)))}f}' if v > 0 else '0'

def times(v: float) -> str: return f'{v:,.0f}×' if v >= 100 else f'{v:.1f}×' if v >= 1 else f'{v:.2f}×'
def secs(v: float) -> str: return f'{rate(v)} s' if v < 1 else f'{v:.2f} s' if v < 10 else f'{v:.1f} s'
def count(n: int, word: str) -> str: return f"{n:,} {word}{'s' * (n != 1)}"
def shape(s) -> str: return '×'.join(map(str, s))
def goal(g: str) -> str: return re.sub(r'(\d)x\b', r'\1×', g.replace('>=', '≥'))
def load(l: list) -> str: return f'{l[0]:.1f}' if l else 'unknown'

def size(n: float) -> str:
    "Bytes in binary units: one decimal under 10, none above (103 KiB, 514 MiB, 8.1 GiB)."
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB': return f'{n:.1f} {unit}' if n < 10 and unit != 'B' else f'{n:,.0f} {unit}'
        n /= 1024

# --- the records ----------------------------------------------------------------------------------------------------------
def _records(folder: Path) -> list[tuple[Path, dict]]:
    return [(f, json.loads(f.read_text())) for f in sorted(folder.glob('*.json'))]

def newest(folder: Path, kind: str) -> tuple[Path, dict]:
    "The newest record of `kind` ('default', 'step-throughput': benchmarks/run.py's modes, not --quick; 'gpu') in `folder`."
    got = [(f, r) for f, r in _records(folder) if (r.get('record') == 'gpu') == (kind == 'gpu')
           and (kind == 'gpu' or (r.get('mode') == kind and not r.get('quick')))]
    if not got: raise FileNotFoundError(f'{folder}: no {kind} record (benchmarks/run.py --json, or a GPU record)')
    return max(got, key=lambda fr: (fr[1]['date'], fr[1].get('finished', ''), fr[0].name))

def _rel(f: Path) -> str:
    "A record's name as the README gives it: its place in benchmarks/records/ (also for a copy read with --records)."
    return f'benchmarks/records/{f.name}'

def _loaded(r: dict) -> str:
    "How loaded the machine was: the 1-minute load average before and after the run, against its cores."
    cores, before, after = r['machine']['cores'], r.get('load_before', []), r.get('load_after', [])
    where = f'load average {load(before)} before the run and {load(after)} after, on {cores} cores'
    return f'**measured while other runs shared the machine ({where})**' if _busy(r) else f'measured on a quiet machine ({where})'

def _commit(r: dict) -> str:
    "The commit the run measured, short, and whether tracked files had changed from it."
    g = r.get('git') or {}
    return f"commit {(g.get('commit') or 'unknown')[:7]}" + (' with uncommitted changes' if g.get('dirty') else '')

def _busy(r: dict) -> bool:
    "Was the 1-minute load average, before or after the run, above half the cores?"
    return max(r.get('load_before', [])[:1] + r.get('load_after', [])[:1] or [0]) > r['machine']['cores'] / 2

# --- the CPU table --------------------------------------------------------------------------------------------------------
def _agree(f: dict) -> str:
    labels = 'same labels' if f['labels_agree'] == 1 else f"labels agree on {f['labels_agree']:.4%} of voxels"
    d = f.get('g_max_abs_diff')
    return labels + ('' if d is None else ", same G image" if d == 0 else f", G's image within {d:.0e}")

def _table_rows(rows: dict) -> list[tuple]:
    "(measurement, ours, other, ratio, goal) of each README row whose measurement the record holds."
    out = []
    if r := rows.get('loader_vs_step'):
        f = r['facts']
        out.append((f"patches/s the loader delivers vs the {f['preset']}-preset G+S+D step consumes (batch {f['batch']}, "
                    f"{count(f['rounds'], 'round')}, alternating)", rate(r['ours']), rate(r['other']), times(r['ratio']), goal(r['goal'])))
    if (r := rows.get('extract_vs_torchio')) and r['ours'] is not None:
        f = r['facts']
        same = (f"same {f['patches']:,} patches" if f['same_set'] else
                f"{f['patches']:,} vs {f['torchio_patches']:,} patches, not the same set on our grid")
        out.append((f"foreground patches of {f['volume']} ({shape(f['shape'])}, {f['patch']}³, stride {f['stride']}): "
                    f"`extract_patches` vs TorchIO `GridSampler` + the same filter ({same})",
                    secs(r['ours']), secs(r['other']), times(r['ratio']), goal(r['goal'])))
    if r := rows.get('memory_index_training_split'):
        out.append((f"memory of the exp 7 training split: patch index vs materialised patches ({r['facts']['patches']:,} patches)",
                    size(r['ours']), size(r['other']), times(r['ratio']), ''))
    if r := rows.get('memory_index_volumes_training_split'):
        out.append(('the same, counting the normalized volumes the dataset holds', size(r['ours']), size(r['other']), times(r['ratio']), ''))
    if r := rows.get('inference_seg_and_g'):
        f = r['facts']
        out.append((f"whole-volume inference ({shape(f['shape'])}, {f['preset']} G+S, overlap {f['overlap']}), labels and G's image: "
                    f"`predict_volume(normalized=True)` vs MONAI `sliding_window_inference` called directly ({_agree(f)}; "
                    f"{count(f['rounds_each'], 'round')} each, alternating)", secs(r['ours']), secs(r['other']), times(r['ratio']), goal(r['goal'])))
    if r := rows.get('inference_seg_only'):
        out.append((f"the same, the segmentation only: `predict_volume(normalized=False)` vs MONAI's inferer stitching the "
                    f"labels alone ({_agree(r['facts'])})", secs(r['ours']), secs(r['other']), times(r['ratio']), goal(r['goal'])))
    if r := rows.get('rss_total'):
        out.append(('peak RSS of the whole benchmark', size(r['ours'] * 2**20), '', '', ''))
    return out

def _step(r: dict) -> str:
    "'0.48 patches/s (quick widths, batch 8, 3 timed steps)' from a training-step row."
    f = r['facts']
    n = f['timed_steps'] if f['secs_per_step'] != f['first_step_s'] else 0   # 0: only the first step fitted the budget
    how = count(n, 'timed step') if n else 'its first step only: over the time budget'
    return f"{rate(r['ours'])} patches/s ({f['preset']} widths, batch {f['batch']}, {how})"

def cpu_text(f: Path, r: dict) -> str:
    "The CPU paragraph, table and step sentence of the default benchmark's record."
    m, rows = r['machine'], {x['key']: x for x in r['rows']}
    head = (f"`python benchmarks/run.py` measures each pair side by side in one process and prints ratios (`--quick`: a CI "
            f"smoke test, figures meaningless); `--json PATH` writes its record. Figures below: `{_rel(f)}` ({r['date']}, "
            f"{r['seconds'] / 60:.0f} min, {_commit(r)}), the {m['cores']}-core development CPU "
            f"({m['cpu_model']}, {m['arch']}, torch {m['torch']}, {m['threads']} threads, OMP_WAIT_POLICY {m['omp_wait_policy']}), "
            f"{_loaded(r)}" + (' — the absolute speeds are therefore low;' if _busy(r) else ';') + " the ratios compare two "
            "things timed in alternation under the same load.")
    if not r.get('complete', True):
        head += (f" This record is partial: it holds the sections {', '.join(r['sections_done'])} only (the run was cut short).")
    table = ['| measurement | ours | other | ratio | goal |', '|---|---|---|---|---|']
    table += ['| ' + ' | '.join(x) + ' |' for x in _table_rows(rows)]
    steps = [rows[k] for k in ('step_quick_b8_cpu', 'step_paper_b2_cpu') if k in rows]
    out = [head, '\n'.join(table)]
    if steps: out.append(f"G+S+D training step on this CPU in the same run: {', '.join(map(_step, steps))}.")
    return '\n\n'.join(out)

def step_text(f: Path, r: dict) -> str:
    "The --step-throughput paragraph and its table: patches/s by widths and threads, and the ratios of the same run."
    m = r['machine']
    ps = {(tuple(x['g_s_widths']), x['threads']): x for x in r['rows']}
    widths = list(dict.fromkeys(w for w, _ in ps)); threads = sorted({t for _, t in ps})
    n = sorted({x['steps'] for x in r['rows']})
    head = (f"`python benchmarks/run.py --step-throughput` times exp 7's G+S+D step (the {r['preset']} preset's batch of "
            f"{r['batch']} {r['patch']}³ patches: forward, backward, optimiser steps) with G and S widths "
            f"{' and '.join(map(str, widths))}, with {' and '.join(map(str, threads))} threads, in alternating rounds after "
            f"{r['warmup']} untimed step each, and prints the ratios measured in the same run. Its record, `{_rel(f)}` "
            f"({r['date']}, {r['seconds'] / 60:.0f} min, {_commit(r)}, {'-'.join(map(str, n[:-1]))}{'-' * (len(n) > 1)}{count(n[-1], 'timed step')} each, "
            f"{m['threads']} threads available, OMP_WAIT_POLICY {m['omp_wait_policy']}), was {_loaded(r)}; "
            "patches/s:")
    t = ['| G, S widths | ' + ' | '.join(f"{k} thread{'s' * (k > 1)}" for k in threads) + f' | {threads[-1]} threads / {threads[0]} |',
         '|---|' + '---|' * (len(threads) + 1)]
    for w in widths:
        t.append(f'| {w} | ' + ' | '.join(rate(ps[w, k]['patches_per_s']) for k in threads)
                 + f" | {times(ps[w, threads[-1]]['patches_per_s'] / ps[w, threads[0]]['patches_per_s'])} |")
    w0, w1 = widths[0], widths[-1]
    t.append(f'| {w1} / {w0} | ' + ' | '.join(times(ps[w1, k]['patches_per_s'] / ps[w0, k]['patches_per_s']) for k in threads) + ' | |')
    return head + '\n\n' + '\n'.join(t)

# --- the GPU record ----------------------------------------------------------------------------------------------------------
def _v(g: dict, key: str): return g['figures'][key]['value']

def paper_rate(g: dict) -> float:
    "The paper's patches/s from its budget (patches x share x epochs in hours), checked against the rate the log quotes."
    v = _v(g, 'paper_patches') * _v(g, 'paper_train_fraction') * _v(g, 'paper_epochs') / (_v(g, 'paper_hours') * 3600)
    if round(v, 1) != _v(g, 'paper_patches_per_s'):
        raise ValueError(f"GPU record: the paper's budget gives {v:.2f} patches/s, its paper_patches_per_s says {_v(g, 'paper_patches_per_s')}")
    return v

def gpu_text(f: Path, g: dict) -> str:
    "The paper's reference and the GPU paragraph, from the GPU record's figures."
    m = {k: x['value'] for k, x in g['machine'].items()}
    amps = ('off', 'fp16', 'bf16')
    det = [_v(g, f'step_paper_b16_cuda_{a}_det') for a in amps]
    tuned = [_v(g, f'step_paper_b16_cuda_{a}_autotuned') for a in amps]
    cost = [b / a for a, b in zip(det, tuned)]
    budget = _v(g, 'paper_patches') * _v(g, 'paper_train_fraction') * _v(g, 'paper_epochs')
    fastest = max(tuned)
    paper = (f"The paper reports ≈ {paper_rate(g):.0f} patches/s on 2× RTX 2080 Ti ({_v(g, 'paper_patches'):,} × "
             f"{_v(g, 'paper_train_fraction')} patches × {_v(g, 'paper_epochs')} epochs in {_v(g, 'paper_hours')} h).")
    passed, skipped = _v(g, 'test_gpu_passed'), _v(g, 'test_gpu_skipped')
    gpu = (f"**On a GPU** (one {m['gpu']}, torch {m['torch']}, CUDA {m['cuda']}, {m['date']}; full log in `{g['source']}`, its "
           f"figures in `{_rel(f)}`, made with `{m['how']}`): the paper widths' G+S+D step at batch 16 ran at "
           f"{' / '.join(rate(v) for v in det)} patches/s (fp32 / fp16 / bf16) in the default deterministic mode and at "
           f"{' / '.join(rate(v) for v in tuned)} patches/s with `--no-deterministic` (cuDNN autotuning): determinism costs "
           f"{min(cost):.1f}-{max(cost):.1f}× there; {rate(_v(g, 'step_paper_b64_cuda_bf16_autotuned'))} patches/s at batch 64 "
           f"(bf16, {_v(g, 'step_paper_b64_cuda_bf16_autotuned_peak_memory'):.0f} GiB). At {rate(fastest)} patches/s the paper's "
           f"budget ({budget:,.0f} patches) takes about {budget / fastest / 60:.0f} min against the paper's {_v(g, 'paper_hours')} h "
           f"(an estimate from the step rate, not a run). The quick-preset exp 7 trained in {_v(g, 'exp7_quick_train_s')} s and "
           f"was scored in {_v(g, 'exp7_quick_eval_s')} s on that GPU ({_v(g, 'exp7_quick_amp')}); `tests/test_gpu.py` (autocast "
           f"fp16/bf16 steps, a CUDA run scored on the CPU, inference agreeing across devices, NCCL) passed there ({passed} "
           f"passed), except the 2-GPU torchrun test ({skipped} skipped), which needs two GPUs.")
    return paper + '\n\n' + gpu

def performance_text(folder: Path = RECORDS) -> str:
    "The README's Performance block, every number read from the newest records in `folder` or computed from them."
    return '\n\n'.join((cpu_text(*newest(folder, 'default')), step_text(*newest(folder, 'step-throughput')),
                        gpu_text(*newest(folder, 'gpu'))))

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='exit 1 if the README differs from what the records give; write nothing')
    ap.add_argument('--readme', type=Path, default=ROOT/'README.md', help='the README to write or check')
    ap.add_argument('--records', type=Path, default=RECORDS, help='the folder of benchmark records (default benchmarks/records/; another one is named as if it were it: tests)')
    a = ap.parse_args(argv)
    readme = a.readme.read_text()
    if BEGIN not in readme or END not in readme: print(f'{a.readme}: no performance markers ({BEGIN} ... {END})'); return 1
    i, j = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    new = readme[:i] + '\n' + performance_text(a.records) + '\n' + readme[j:]
    if a.check:
        if new != readme: print(f'{a.readme}: the performance block differs from the records; run python tools/readme_performance.py'); return 1
        print(f'{a.readme}: the performance block is what the records give'); return 0
    a.readme.write_text(new); return 0

if __name__ == '__main__': sys.exit(main())
