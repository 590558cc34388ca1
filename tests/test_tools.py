"tools/run_variants.py: a study's runs side by side, each archived as it ends and appended to one JSON-lines file; tools/run_adapt.py: choose, then score."
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

def test_run_adapt_smoke(tmp_path):
    "choose writes a choice record from the validation subjects; score applies it to a run, and skips it once kept."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'ADVNORM_RUNS': str(tmp_path/'runs')}
    run = tmp_path/'runs'/'exp7'
    subprocess.run([sys.executable, '-c', f'from advnorm.train import train; train(7, "smoke", out={str(run)!r}, progress=False)'],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    tool = [sys.executable, str(ROOT/'tools'/'run_adapt.py')]
    common = ['--keep', str(tmp_path/'keep'), '--work', str(tmp_path/'work')]
    r = subprocess.run(tool + ['choose', str(run), *common, '--grid', '{"lr": [0.001, 0.01], "steps": [2]}'],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    ch = json.loads((tmp_path/'keep'/'choice-exp7.json').read_text())
    assert set(ch['choices']) == {'critic', 'entropy'} and ch['grid'] == {'lr': [0.001, 0.01], 'steps': [2]}
    assert all(c['chosen']['lr'] in (0.001, 0.01) for c in ch['choices'].values())
    score = tool + ['score', str(run), *common, '--choice', str(tmp_path/'keep'/'choice-exp7.json')]
    r = subprocess.run(score, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path/'keep'/'exp7'/'adapt.json').read_text())
    assert rec['chosen_by'] == 'choice-exp7.json' and set(rec['settings']) == {'critic', 'entropy'}
    assert all(rec['settings'][o]['lr'] == ch['choices'][o]['chosen']['lr'] for o in rec['settings'])   # the choice, frozen
    again = subprocess.run(score, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert again.returncode == 0 and 'kept already' in again.stdout

def test_run_variants_severity_journal_row():
    "`--exps 5 7-journal`: the journal row joins the severity study at the λ its sweep kept on validation, named in every run."
    import importlib.util
    spec = importlib.util.spec_from_file_location('run_variants', ROOT/'tools'/'run_variants.py')
    rv = importlib.util.module_from_spec(spec); spec.loader.exec_module(rv)
    from advnorm.tables import journal_lambda
    a = rv.argparse.Namespace(levels=[0.5, 1.0], exps=[rv._exp('5'), rv._exp('7-journal')], preset='quick')
    v = rv.STUDIES['severity'](a)
    lam = journal_lambda()['lambda']   # from the committed records of the journal's λ sweep
    assert v['exp 7-journal, severity 1'] == ('7-journal', {'lambda_adv': lam})
    assert v['exp 7-journal, severity 0.5'][1]['lambda_adv'] == lam and v['exp 5, severity 1'] == (5, {})
    assert [rv._exp(s) for s in ('7', '7-k3')] == [7, '7-k3']
