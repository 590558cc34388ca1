"tools/run_variants.py: a study's runs side by side, each archived as it ends and appended to one JSON-lines file."
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # trains two runs in subprocesses

ROOT = Path(__file__).resolve().parent.parent

def test_run_variants_severity_smoke(tmp_path):
    keep, lines = tmp_path/'keep', tmp_path/'runs.jsonl'
    args = [sys.executable, str(ROOT/'tools'/'run_variants.py'), 'severity', '--preset', 'smoke', '--levels', '0.5', '1',
            '--exps', '5', '--seeds', '0', '--workers', '2', '--keep', str(keep), '--jsonl', str(lines)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'ADVNORM_RUNS': str(tmp_path/'runs')}
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0 and 'FAILED' not in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    recs = {json.loads(l)['label']: json.loads(l) for l in lines.read_text().splitlines()}
    assert set(recs) == {'exp 5, severity 0.5', 'exp 5, severity 1'}
    benches = {k: v['results']['benchmark'] for k, v in recs.items()}
    assert benches['exp 5, severity 1'] == 'seed0-infant3-adult3-4mm-v2' and '-sev0.5-' in benches['exp 5, severity 0.5']
    for v in recs.values(): assert (keep/v['name']/'results.json').exists() and (keep/v['name']/'config.json').exists()
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)   # all kept: nothing reruns
    assert again.returncode == 0 and again.stdout.count('kept already') == 2 and len(lines.read_text().splitlines()) == 2
