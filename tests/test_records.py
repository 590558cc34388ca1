"The record checker, from a user's side: the committed records pass; a record whose config.json was swapped fails."
import json, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # subprocesses checking every record (11-25 s each on the loaded 2-core machine)

ROOT = Path(__file__).resolve().parent.parent
TOOL = [sys.executable, str(ROOT/'tools'/'check_records.py')]

def test_committed_records_hold_together():
    r = subprocess.run(TOOL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert 'all hold together' in r.stdout

def test_a_swapped_config_fails(tmp_path):
    for name in ('exp7-quick-patch-seed1', 'exp7-quick-patch-seed2'):
        shutil.copytree(ROOT/'results'/name, tmp_path/name)
    ok = subprocess.run(TOOL + ['--root', str(tmp_path), '--no-tables'], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout
    before = (tmp_path/'exp7-quick-patch-seed2'/'results.json').read_bytes()
    shutil.copy(tmp_path/'exp7-quick-patch-seed1'/'config.json', tmp_path/'exp7-quick-patch-seed2'/'config.json')
    r = subprocess.run(TOOL + ['--root', str(tmp_path), '--no-tables'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout
    assert 'FAIL: exp7-quick-patch-seed2: seed is 2 in results.json but 1 in config.json' in r.stdout, r.stdout
    assert (tmp_path/'exp7-quick-patch-seed2'/'results.json').read_bytes() == before   # the checker changes nothing

def test_adaptation_defaults_are_the_settings_chosen_on_validation():
    "advnorm-segment --adapt uses ADAPT's learning rate; it must be the one the committed choice kept for the critic prior."
    from advnorm.segment import ADAPT
    choices = sorted((ROOT/'results'/'harmonize').glob('choice-*.json'))
    assert choices, 'no choice record committed (tools/run_adapt.py choose)'
    for f in choices:
        kept = json.loads(f.read_text())['choices']['critic']['chosen']
        assert (kept['lr'], kept['steps']) == (ADAPT['lr'], ADAPT['steps']), (f.name, kept, ADAPT)
