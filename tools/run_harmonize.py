"""Score trained runs' harmonization (`advnorm.harmonize.harmonization_record`) and keep each record under results/harmonize/.

    python tools/run_harmonize.py runs/exp7-quick-patch-seed3 runs/exp6-quick-patch-seed3 ... [--keep results/harmonize]

The travelling and unseen subjects are written once into a work folder and shared by every run. Each record lands as
`<keep>/<run name>/harmonize.json` as soon as its run is scored, so a long list can be stopped and started again (runs
already kept with the same checkpoint are skipped).
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path
from advnorm.harmonize import harmonization_record
from advnorm.core import file_sha256, relative_paths
from advnorm.tables import results_dir

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', nargs='+', help='trained run folders')
    ap.add_argument('--keep', default=None, help='records folder (default: results/harmonize)')
    ap.add_argument('--work', default=None, help='folder for the generated subjects (default: a temporary one)')
    ap.add_argument('--device', default='cpu')
    a = ap.parse_args(argv)
    keep = Path(a.keep or results_dir()/'harmonize'); work = Path(a.work or tempfile.mkdtemp(prefix='advnorm-harmonize-'))
    for run in map(Path, a.runs):
        dest = keep/run.name/'harmonize.json'
        ck = run/'best.pt' if (run/'best.pt').exists() else run/'checkpoint.pt'
        if dest.exists() and json.loads(dest.read_text()).get('checkpoint_sha256') == file_sha256(ck):
            print(f'{run.name}: kept already', flush=True); continue
        t = time.time(); rec = harmonization_record(run, work=work, device=a.device)
        dest.parent.mkdir(parents=True, exist_ok=True); dest.write_text(json.dumps(relative_paths(rec), indent=1) + '\n')
        print(f'{run.name}: {time.time() - t:.0f} s', flush=True)
    return 0

if __name__ == '__main__': sys.exit(main())
