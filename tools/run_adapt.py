"""Test-time adaptation of G on unseen sites (`advnorm.harmonize`): choose its settings on validation subjects, then score runs.

    python tools/run_adapt.py choose runs/exp7-quick-patch-seed6                 # -> results/harmonize/choice-<run>.json
    python tools/run_adapt.py score runs/exp7-quick-patch-seed* --choice results/harmonize/choice-exp7-quick-patch-seed6.json

`choose` tries `ADAPT_GRID` for each objective the run can take on the validation subjects (a training domain through a
shifted profile: never the unseen sites) and keeps the best mean Dice. `score` applies those settings, frozen, to every
run given and keeps each `adapt.json` under `<keep>/<run name>/` as soon as it is scored (runs already kept with the same
checkpoint and settings are skipped).
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path
import torch
from advnorm.core import file_sha256, relative_paths, git_commit
from advnorm.harmonize import write_validation, choose_adaptation, adaptation_record, adaptation_variants, ADAPT_GRID
from advnorm.segment import load_segmenter
from advnorm.tables import results_dir

def _ckpt(run: Path) -> Path: return run/'best.pt' if (run/'best.pt').exists() else run/'checkpoint.pt'

def choose(run: Path, keep: Path, work: Path, device: str, grid: dict = ADAPT_GRID) -> Path:
    seg, t = load_segmenter(_ckpt(run), device), time.time()
    val = work/'validation'/'Shifted'
    if not val.exists(): write_validation(work/'validation', seed=seg.preset.benchmark.get('seed', 0), voxel_mm=seg.preset.benchmark.get('voxel_mm', 2.0))
    objectives = [o for o in adaptation_variants(seg, {'critic': {}, 'entropy': {}}) if o != 'none']
    rec = {'run': run.name, 'exp': seg.exp.exp, 'checkpoint_sha256': file_sha256(_ckpt(run)), 'grid': grid,
           'choices': {o: choose_adaptation(seg, val, o, grid) for o in objectives}, 'threads': torch.get_num_threads(),
           'git_commit': git_commit()}
    rec['seconds'] = round(time.time() - t, 1)
    out = keep/f'choice-{run.name}.json'; out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(relative_paths(rec), indent=1) + '\n')
    return out

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('what', choices=('choose', 'score'))
    ap.add_argument('runs', nargs='+', help='trained run folders')
    ap.add_argument('--choice', default=None, help="score: the choice record whose settings are applied")
    ap.add_argument('--keep', default=None, help='records folder (default: results/harmonize)')
    ap.add_argument('--work', default=None, help='folder for the generated subjects (default: a temporary one)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--grid', type=json.loads, default=ADAPT_GRID, help='choose: the settings tried, as JSON (default: ADAPT_GRID)')
    a = ap.parse_args(argv)
    keep = Path(a.keep or results_dir()/'harmonize'); work = Path(a.work or tempfile.mkdtemp(prefix='advnorm-adapt-'))
    if a.what == 'choose':
        for run in map(Path, a.runs): print(f'{run.name}: {choose(run, keep, work, a.device, a.grid)}', flush=True)
        return 0
    if not a.choice: ap.error('score needs --choice (a record written by `choose`)')
    ch = json.loads(Path(a.choice).read_text())
    settings = {o: {k: c['chosen'][k] for k in ('lr', 'steps')} for o, c in ch['choices'].items()}
    for run in map(Path, a.runs):
        dest = keep/run.name/'adapt.json'
        if dest.exists() and (old := json.loads(dest.read_text())).get('checkpoint_sha256') == file_sha256(_ckpt(run)) \
                and all(old['settings'].get(o, {}).get('lr') == s['lr'] for o, s in settings.items() if o in old['settings']):
            print(f'{run.name}: kept already', flush=True); continue
        t = time.time(); rec = adaptation_record(run, settings, work=work, device=a.device, chosen_by=Path(a.choice).name)
        dest.parent.mkdir(parents=True, exist_ok=True); dest.write_text(json.dumps(relative_paths(rec), indent=1) + '\n')
        print(f'{run.name}: {time.time() - t:.0f} s', flush=True)
    return 0

if __name__ == '__main__': sys.exit(main())
