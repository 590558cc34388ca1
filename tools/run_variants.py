"""Run a study of `advnorm.tables` (its variants x seeds) as parallel one-thread processes, each run archived as it ends.

    python tools/run_variants.py severity --seeds 0 1 --workers 2                   # the 2-core CPU: two at a time
    python tools/run_variants.py severity --seeds 0 1 --workers 24 --device cuda    # one GPU shared by 24 runs
    python tools/run_variants.py severity --exps 5 6 7 7-journal --levels 0.25 0.5 0.75 --seeds 0 1   # CPU, with the journal row
    python tools/run_variants.py table1 --exps 5 6 7 --seeds 3 4 5 6 7 8 9 --split subject   # more seeds of rows 5-7
    python tools/run_variants.py journal --seeds 0                                  # the journal objective, its lambda sweep
    python tools/run_variants.py journal --seeds 1 2 --lambdas 0.1                  # its row at the lambda kept (journal_lambda)
    python tools/run_variants.py beyond --only whitestripe nyul --seeds 0 1 2 --split subject   # beyond.ipynb's variants

Every finished run's `results.json` and `config.json` land in `--keep` (default `results/`, as `sweep` keeps them) and,
with `--jsonl`, as one line in that file (a single file to carry back from another machine). Runs already kept with the
same benchmark are skipped, as in `sweep`. The benchmarks the study needs are generated first, one process each.
"""
from __future__ import annotations
import argparse, fcntl, json, multiprocessing as mp, os, sys, time
from pathlib import Path

from advnorm.tables import budget_variants, severity_variants, VARIANT_RUNS
from advnorm.experiments import JOURNAL_LAMBDAS

STUDIES = {'table1': lambda a: {f'exp {e}': (e, None) for e in a.exps},   # Table 1 rows, more seeds or another split
           'severity': lambda a: severity_variants(a.levels, a.exps, a.preset, _journal_lambda(a) if '7-journal' in a.exps else None),
           'budget': lambda a: budget_variants((1, 3), (0.1, 1.0), a.preset),
           # the journal's objective (issue 27): λ chosen on the validation Dice loss of seed 0, before any test figure is read
           'journal': lambda a: {f'7-journal lambda_adv={l}': ('7-journal', {'lambda_adv': l}) for l in a.lambdas or JOURNAL_LAMBDAS},
           # beyond.ipynb's variants (`VARIANT_RUNS`) other than the Table 1 rows; --only keeps those whose label or key holds a word
           'beyond': lambda a: {k: (e, ov) for k, (e, ov) in VARIANT_RUNS.items() if '(Table 1)' not in k
                                and (not a.only or any(w.lower() in f'{k} {e} {ov}'.lower() for w in a.only))}}

def _journal_lambda(a) -> float:
    "The journal row's λ: the one `journal_lambda` keeps on the validation Dice loss of its sweep (seed 0, patch split)."
    from advnorm.tables import journal_lambda
    return journal_lambda(preset=a.preset)['lambda']

def _exp(s: str):
    "A Table 1 row (5) or a registry key ('7-journal') from the command line."
    return int(s) if s.isdigit() else s

def _bench(kw):
    from advnorm.benchmark import ensure_benchmark
    return str(ensure_benchmark(**kw, progress=False))

def _run(job):
    label, exp, ov, seed, a = job
    import torch; torch.set_num_threads(a.threads)
    from advnorm.tables import sweep, run_dir_for
    t = time.time()
    kept = Path(a.keep)/run_dir_for(exp, a.preset, a.split, seed, None, ov or None).name
    stamp = lambda: (kept/'results.json').stat().st_mtime_ns if (kept/'results.json').exists() else None
    before = stamp()   # a run kept already (same benchmark) is not run again, nor appended again
    try:
        sweep([exp], [seed], a.preset, a.split, progress=False, overrides=ov or None, keep=a.keep, device=a.device)
    except Exception as e:   # one failed run must not stop the others: say which and why
        return f'FAILED {label} seed {seed}: {type(e).__name__}: {e}'
    if stamp() == before: return f'{label} seed {seed}: kept already'
    if a.jsonl:
        rec = {'name': kept.name, 'label': label, 'seed': seed,
               **{k: json.loads((kept/f'{k}.json').read_text()) for k in ('results', 'config')}}
        with open(a.jsonl, 'a') as f:
            fcntl.flock(f, fcntl.LOCK_EX); f.write(json.dumps(rec) + '\n'); fcntl.flock(f, fcntl.LOCK_UN)
    return f'{label} seed {seed}: {time.time() - t:.0f} s'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('study', choices=sorted(STUDIES))
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    ap.add_argument('--levels', type=float, nargs='+', default=[0.25, 0.5, 0.75, 1.0], help='severity levels')
    ap.add_argument('--exps', type=_exp, nargs='+', default=[5, 6, 7],
                    help="experiments of the table1 and severity studies: rows (5) or keys ('7-journal': at the λ journal_lambda keeps)")
    ap.add_argument('--lambdas', type=float, nargs='+', default=None, help='lambda_adv of the journal study (default: JOURNAL_LAMBDAS)')
    ap.add_argument('--only', nargs='+', default=None, help="beyond: the variants whose label or experiment holds one of these words (e.g. nyul lsgan)")
    ap.add_argument('--preset', default='quick'); ap.add_argument('--split', default='patch')
    ap.add_argument('--workers', type=int, default=2); ap.add_argument('--device', default='auto')
    ap.add_argument('--threads', type=int, default=1, help='torch threads per run (the records say how many)')
    ap.add_argument('--keep', default=None, help='records folder (default: results/ of the checkout)')
    ap.add_argument('--jsonl', default=None, help='also append each finished run to this file')
    a = ap.parse_args(argv)
    from advnorm.tables import results_dir
    from advnorm.experiments import get_preset
    a.keep = str(a.keep or results_dir())
    variants = STUDIES[a.study](a)
    jobs = [(label, exp, ov, seed, a) for seed in a.seeds for label, (exp, ov) in variants.items()]
    benches = {json.dumps(get_preset(a.preset, **(ov or {})).benchmark, sort_keys=True) for _, _, ov, _, _ in jobs}
    ctx = mp.get_context('spawn')   # CUDA cannot be used in forked children
    t0 = time.time()
    with ctx.Pool(min(a.workers, len(benches))) as pool:
        for b in pool.imap_unordered(_bench, [json.loads(b) for b in benches]): print('benchmark', Path(b).name, flush=True)
    print(f'{len(jobs)} runs on {a.workers} workers, device {a.device}', flush=True)
    with ctx.Pool(a.workers, maxtasksperchild=1) as pool:
        for msg in pool.imap_unordered(_run, jobs): print(f'[{time.time() - t0:.0f} s] {msg}', flush=True)

if __name__ == '__main__':
    _t = sys.argv[sys.argv.index('--threads') + 1] if '--threads' in sys.argv[:-1] else '1'
    os.environ.setdefault('OMP_NUM_THREADS', _t)
    main()
