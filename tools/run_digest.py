"""Digests of what a run folder holds, to show that a change of code moved no number: the weights of each network in
checkpoint.pt and best.pt (tensors only: the config's random run id and paths do not count), and metrics.jsonl without
its timing fields and without the line a resume adds (`resumed`: the steps, losses and epochs of a resumed run must be
those of the uninterrupted one).

    python tools/run_digest.py runs/exp7-quick-patch-seed0              # print the digests as JSON
    python tools/run_digest.py RUN --compare benchmarks/refactor-baseline-2026-11-30.json --key quick
"""
from __future__ import annotations
import argparse, hashlib, json, sys
from pathlib import Path
from advnorm.core import load_checkpoint, weights_sha256

TIMING = ('train_seconds', 'patches_per_s')

def run_digest(run) -> dict:
    run = Path(run); out = {}
    for f in ('checkpoint.pt', 'best.pt'):
        if (run/f).exists(): out[f] = weights_sha256(load_checkpoint(run/f)['nets'])
    recs = [json.loads(l) for l in (run/'metrics.jsonl').read_text().splitlines()]
    recs = [{k: v for k, v in r.items() if k not in TIMING} for r in recs if not r.get('resumed')]
    out['metrics.jsonl'] = {'records': len(recs), 'sha256': hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest()}
    if (run/'results.json').exists():
        r = json.loads((run/'results.json').read_text()); out['results'] = {k: r[k] for k in ('patch_dice', 'volume_dice', 'hd95_mm', 'jsd_bits') if k in r}
    return out

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run'); ap.add_argument('--compare', default=None); ap.add_argument('--key', default=None)
    a = ap.parse_args(argv); d = run_digest(a.run)
    if not a.compare: print(json.dumps(d, indent=1)); return 0
    ref = json.loads(Path(a.compare).read_text())[a.key]['digest']
    same = {k: d.get(k) == v for k, v in ref.items()}
    for k, ok in same.items(): print(f"{k}: {'identical' if ok else 'DIFFERENT'}")
    return 0 if all(same.values()) else 1

if __name__ == '__main__': sys.exit(main())
