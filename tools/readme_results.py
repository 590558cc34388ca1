"""Write the README's results paragraphs from the committed records (results/), so that no number there is typed.

    python tools/readme_results.py          # rewrite the block between the README's results markers
    python tools/readme_results.py --check  # exit 1 if the README's block differs from what the records give (tests/test_readme.py)
"""
from __future__ import annotations
import argparse, sys
from pathlib import Path
import numpy as np
from advnorm.tables import (sweep, paired, seed_scores, noise_floor, noise_pairs, NOISE_WHY, severity_variants, sweep_variants, budget_variants, results_dir,
                            TABLE1_SEEDS, TABLE1_TARGET_SEEDS, PAIRS, SPLITS, JOURNAL_SEEDS, journal_lambda)

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = '<!-- results: written by tools/readme_results.py from results/ -->', '<!-- results: end -->'

def _msd(v) -> str: return f'{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}' if len(v) > 1 else f'{np.mean(v):.3f}'

def _collect() -> dict:
    return {sp: {k: r for e, seeds in TABLE1_SEEDS[sp].items() for k, r in sweep([e], list(seeds), 'quick', sp, run_missing=False).items()}
            for sp in SPLITS}

def results_text() -> str:
    "The README's results paragraphs, every number computed from the records."
    res = _collect(); out = []
    cal = [(sp, e, s, v) for sp in SPLITS for e in (1, 2, 3, 4) for s, v in seed_scores(res[sp], e).items()]
    ok = lambda e, v: v >= 0.80 if e in (1, 2) else v <= 0.60
    cal01 = [x for x in cal if x[2] in (0, 1)]; miss = [x for x in cal if not ok(x[1], x[3])]
    out.append(f"Trained on one domain and tested on the other, S collapses as in the paper: {sum(ok(e, v) for _, e, _, v in cal01)} of the "
               f"{len(cal01)} calibration runs (rows 1–4, seeds 0 and 1, both splits) meet the targets (in-domain ≥ 0.80, across "
               f"domains ≤ 0.60 mean Dice)" + (f"; of the runs made after, {', '.join(f'exp {e} seed {s} ({sp} split, {v:.3f})' for sp, e, s, v in miss)} miss them."
                                              if miss else '.'))
    ns = {sp: sorted(len(seed_scores(res[sp], e)) for e in (5, 6, 7)) for sp in SPLITS}
    n = {sp: f'{v[0]}' if v[0] == v[-1] else f'{v[0]}–{v[-1]}' for sp, v in ns.items()}   # each row over its own seeds
    rows = '; '.join(f"{sp} split ({n[sp]} seeds): " + ', '.join(f"exp {e} {_msd(list(seed_scores(res[sp], e).values()))}" for e in (5, 6, 7))
                     for sp in SPLITS)
    out.append(f"Rows 5–7, mean Dice over CSF / GM / WM on test patches, mean ± sd over seeds — {rows}. On paired seeds "
               f"(`table1.ipynb`; {TABLE1_TARGET_SEEDS} per split is the target, the rest is being recorded): " + '; '.join(
                   f"exp {b} − exp {a} {p['mean']:+.3f} [{p['t_ci'][0]:+.3f}, {p['t_ci'][1]:+.3f}] on the {sp} split, {p['verdict']}"
                   for a, b in PAIRS for sp in SPLITS for p in [paired(res[sp], a, b)]) + '.')
    nf = noise_floor()
    if nf: out.append("The implementation's own noise (each against its Table 1 record): " + '; '.join(
        f"{r['run']} ({NOISE_WHY[r['what']]}) {r['delta']:+.3f}" for r in nf) + ''.join(
        f"; {p['run']}'s two {p['threads']}-thread runs (at {p['commits'][0]} and {p['commits'][1]}) differ by {abs(p['delta']):.3f}"
        for p in noise_pairs(nf)) + '.')
    rz = {e: [r['realism'] for sp in SPLITS for (x, _), r in res[sp].items() if x == e and 'realism' in r] for e in (6, 7)}
    out.append("Realism of G's images (`13_realism`, both splits): W1 to the nearest real domain " + ', '.join(
        f"exp {e} {np.mean([z['w1_nearest'] for z in rz[e]]):.3f}" for e in (6, 7)) + "; post-hoc critic ROC AUC " + ', '.join(
        f"exp {e} {np.mean([z['critic_auc']['all'] for z in rz[e]]):.3f}" for e in (6, 7)) + "; SSIM with the input " + ', '.join(
        f"exp {e} {np.mean([z['ssim_brain']['mean'] for z in rz[e]]):.3f}" for e in (6, 7)) + f" (runs: {len(rz[6])} and {len(rz[7])}).")
    sev = sweep_variants(severity_variants(), (0, 1), 'quick', 'patch', run_missing=False, progress=False, keep=results_dir()/'severity')
    by = {(k, s): r for k, runs in sev.items() for s, r in runs.items()}
    g = [(lv, paired(by, f'exp 5, severity {lv:g}', f'exp 7, severity {lv:g}')['mean'], paired(by, f'exp 6, severity {lv:g}', f'exp 7, severity {lv:g}')['mean'])
         for lv in (0.25, 0.5, 0.75, 1.0)]
    out.append("`beyond.ipynb`: the intensity-shift sweep (GPU, seeds 0 and 1) gives exp 7 − exp 5 of " + ' / '.join(f'{a:+.3f}' for _, a, _ in g)
               + " and exp 7 − exp 6 of " + ' / '.join(f'{b:+.3f}' for *_, b in g) + " at severities 0.25 / 0.5 / 0.75 / 1; the budget × λ study is "
               "read there on paired seeds.")
    out += _journal_text(res) + _severity_cpu_text() + _beyond_text(res) + _adaptation_text()
    return '\n\n'.join(out)

def _ci(p) -> str: return f"{p['mean']:+.3f} [{p['t_ci'][0]:+.3f}, {p['t_ci'][1]:+.3f}], {p['verdict']}"

def _journal_text(res: dict) -> list[str]:
    "The journal objective's row against rows 7, 6 and 5 on its paired seeds, per split."
    if not any(JOURNAL_SEEDS.values()): return []
    lam = journal_lambda()['lambda']; parts = []
    for sp in SPLITS:
        if not JOURNAL_SEEDS[sp]: continue
        r = res[sp] | sweep(['7-journal'], list(JOURNAL_SEEDS[sp]), 'quick', sp, run_missing=False, overrides={'lambda_adv': lam})
        parts.append(f"on the {sp} split ({len(JOURNAL_SEEDS[sp])} seeds) minus " + ', minus '.join(f"exp {a} {_ci(paired(r, a, '7-journal'))}" for a in (7, 6, 5)))
    return [f"The authors' later objective, where G is asked to make D take G(x) for the other domain (`beyond.ipynb`; λ = {lam:g}, "
            "chosen on the validation Dice loss): exp 7-journal " + '; '.join(parts) + '.']

def _severity_cpu_text(levels=(0.25, 0.5, 0.75, 1.0)) -> list[str]:
    "The CPU severity sweep with the journal row (`SEVERITY_CPU_SEEDS`): the journal row minus rows 7, 6 and 5 at each severity."
    from advnorm.tables import SEVERITY_CPU_EXPS, SEVERITY_CPU_SEEDS
    if not SEVERITY_CPU_SEEDS: return []
    lam = journal_lambda()['lambda']
    v = sweep_variants(severity_variants(levels, SEVERITY_CPU_EXPS, 'quick', lam), list(SEVERITY_CPU_SEEDS), 'quick', 'patch',
                       run_missing=False, progress=False)
    by = {(k, s): r for k, runs in v.items() for s, r in runs.items()}
    ps = {a: [paired(by, f'exp {a}, severity {s:g}', f'exp 7-journal, severity {s:g}') for s in levels] for a in (7, 6, 5)}
    seeds = ', '.join(map(str, SEVERITY_CPU_SEEDS))
    from advnorm.tables import severity_mean
    m = lambda e, s, f, nd=3: severity_mean(by, e, s, f, nd)
    jsd, auc = (lambda r: r['jsd_bits']['normalized']), (lambda r: r['realism']['critic_auc']['all'])
    return [f"The intensity-shift sweep again with the journal row, trained on the CPU (`beyond.ipynb`; patch split, seed{'s' * (len(SEVERITY_CPU_SEEDS) > 1)} {seeds}, "
            "one thread): exp 7-journal " + ', '.join(f"− exp {a} of " + ' / '.join(f"{p['mean']:+.3f}" if p['n'] else '—' for p in ps[a]) for a in (7, 6, 5))
            + f" at severities {' / '.join(f'{s:g}' for s in levels)} (verdicts: "
            + ', '.join(sorted({p['verdict'] for v in ps.values() for p in v})) + '). What G does there, exp 7-journal / exp 7 at the same severities: '
            'JSD between the domains after G ' + ', '.join(f"{m('7-journal', s, jsd, 4)} / {m(7, s, jsd, 4)}" for s in levels)
            + ' bits (G\'s input: ' + ' / '.join(m(7, s, lambda r: r['jsd_bits']['input'], 4) for s in levels) + '), post-hoc critic ROC AUC of G\'s images '
            + ', '.join(f"{m('7-journal', s, auc)} / {m(7, s, auc)}" for s in levels) + ' (0.5: not told from real ones).']

def _beyond_text(res: dict) -> list[str]:
    "Classic standardization against z-score, and exp 7 with one thing changed against exp 7, on paired seeds (beyond.ipynb)."
    from advnorm.tables import STANDARDIZATION, STANDARDIZATION_SEEDS, EXP7_VARIANTS, VARIANT_SEEDS, variant_seed_results, on_domains
    say = lambda p: f"{_ci(p)} ({p['n']} seeds)" if p['n'] >= 2 else f"{p['mean']:+.3f} (one seed, no interval)"
    names, out = {'5-whitestripe': 'WhiteStripe', '5-nyul': 'Nyúl'}, []
    parts = [f"{names[e]} − z-score {say(paired(r, 5, e))} on the {sp} split" for sp in SPLITS if STANDARDIZATION_SEEDS[sp]
             for r in [res[sp] | sweep(list(STANDARDIZATION), list(STANDARDIZATION_SEEDS[sp]), 'quick', sp, run_missing=False)] for e in STANDARDIZATION]
    if parts: out.append("Classic standardization in place of exp 5's z-score (`beyond.ipynb`): " + '; '.join(parts) + '.')
    parts = []
    for sp in SPLITS:
        v = variant_seed_results(sp)
        lab = on_domains({(k, s): r for k, runs in v.items() for s, r in runs.items()}, ('iSEG', 'MRBrainS'))
        parts += [f"{k.removeprefix('exp 7, ')} {say(paired(lab, 'exp 7, log loss (Table 1)', k))} on the {sp} split" for k in EXP7_VARIANTS if k in v]
    missing = [sp for sp in SPLITS if not any(VARIANT_SEEDS[k][sp] for k in EXP7_VARIANTS)]
    if parts: out.append("Exp 7 with one thing changed (`beyond.ipynb`; each minus exp 7 on the same seeds, Dice on the two Table 1 domains): "
                         + '; '.join(parts) + '.' + ''.join(f' Not recorded yet on the {sp} split.' for sp in missing))
    return out

def _adaptation_text() -> list[str]:
    "What test-time adaptation of G did on the sites never seen in training, run by run."
    from advnorm.harmonize import load_adaptation, adaptation_gains
    ads = load_adaptation(results_dir()/'harmonize')
    if not ads: return []
    g = adaptation_gains(ads)
    return ["Test-time adaptation of G on two sites never seen in training (`18_harmonize.ipynb`; settings chosen on validation "
            "subjects, then frozen), adapted − unadapted mean Dice: " + '; '.join(
                f"exp {e} with {o} on {s} {np.mean(v):+.3f} ({len(v)} run{'s' if len(v) > 1 else ''}"
                + (f", {sum(x > 0 for x in v)} of {len(v)} above zero)" if len(v) > 1 else ')') for (e, o, s), v in sorted(g.items(), key=str)) + '.']

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--check', action='store_true')
    a = ap.parse_args(argv)
    readme = (ROOT/'README.md').read_text(); i, j = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    new = readme[:i] + '\n' + results_text() + '\n' + readme[j:]
    if a.check:
        if new != readme: print('README.md: the results block differs from the records; run python tools/readme_results.py'); return 1
        print('README.md: the results block is what the records give'); return 0
    (ROOT/'README.md').write_text(new); return 0

if __name__ == '__main__': sys.exit(main())
