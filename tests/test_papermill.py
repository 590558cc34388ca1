"The papermill entry runs every Table 1 row with the smoke preset, and `-p` values really reach the notebook."
import json, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # papermill runs of the notebooks, most of them training

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT/'nbs'/'run_experiment.ipynb'

def _papermill(tmp, *params):
    args = [sys.executable, '-m', 'papermill', str(NB), str(tmp/'out.ipynb'), '--log-level', 'WARNING']
    for k, v in params: args += ['-p', k, str(v)]
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp, timeout=900)

@pytest.mark.parametrize('exp', range(1, 8))
def test_run_experiment_smoke(exp, tmp_path):
    out = tmp_path/f'exp{exp}'
    r = _papermill(tmp_path, ('exp', exp), ('preset', 'smoke'), ('out', out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert res['exp'] == exp and res['preset'] == 'smoke'   # the -p values won over the notebook's defaults
    assert len(res['patch_dice']['mean']) == 3 and all(Path(p).exists() for p in res['figures'].values())

def test_bare_form_without_output_notebook(tmp_path):
    "`papermill nbs/run_experiment.ipynb -p exp N`, the design card's form: no output notebook is written, the run is."
    out = tmp_path/'bare'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(NB), '-p', 'exp', '2', '-p', 'preset', 'smoke', '-p', 'out',
                        str(out), '--log-level', 'WARNING'], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out/'results.json').read_text())['exp'] == 2 and not list(tmp_path.glob('*.ipynb'))

def test_bad_parameter_stops_with_message(tmp_path):
    r = _papermill(tmp_path, ('exp', 9), ('preset', 'smoke'), ('out', tmp_path/'x'))
    assert r.returncode != 0 and 'exp=9' in r.stderr
    assert not (tmp_path/'x').exists()   # nothing was written before the parameters were checked

@pytest.mark.parametrize('adv_loss', ['lsgan', 'wgan-gp'])
def test_adversarial_loss_variants_smoke(adv_loss, tmp_path):
    out = tmp_path/adv_loss
    args = [sys.executable, '-m', 'papermill', str(NB), str(tmp_path/'out.ipynb'), '--log-level', 'WARNING',
            '-p', 'exp', '7', '-p', 'preset', 'smoke', '-p', 'out', str(out), '-y', f'overrides: {{adv_loss: {adv_loss}, lambda_adv: 0.5}}']
    r = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert (res['adv_loss'], res['lambda_adv'], res['overrides']) == (adv_loss, 0.5, {'adv_loss': adv_loss, 'lambda_adv': 0.5})

def test_three_domains_smoke(tmp_path):
    "K = 3 (beyond the paper): D has 4 outputs, every batch holds the 3 domains, Dice is reported per domain."
    out = tmp_path/'k3'
    r = _papermill(tmp_path, ('exp', '7-k3'), ('preset', 'smoke'), ('out', out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert res['exp'] == '7-k3' and set(res['patch_dice']) == {'iSEG', 'MRBrainS', 'LowField', 'mean'}
    assert 0 <= res['jsd_bits']['input'] <= 1.585     # log2(3): the generalised JSD of 3 domains

@pytest.mark.parametrize('exp', ['5-whitestripe', '5-nyul'])
def test_classic_standardization_baselines_smoke(exp, tmp_path):
    "Exp 5 with WhiteStripe or Nyúl histogram matching (beyond the paper) runs, and Nyúl's fitted scale travels with the run."
    out = tmp_path/exp
    r = _papermill(tmp_path, ('exp', exp), ('preset', 'smoke'), ('out', out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert res['exp'] == exp and res['input_norm'] == exp.split('-')[1]
    scale = json.loads((out/'config.json').read_text())['nyul_scale']
    assert (scale is None) == (exp != '5-nyul') and (scale is None or len(scale) == 11)

def test_table_notebooks_smoke(tmp_path):
    "table1.ipynb and beyond.ipynb run every row / variant they list with tiny parameters, and beyond reuses table1's runs."
    import os
    env = os.environ | {'ADVNORM_RUNS': str(tmp_path/'runs'), 'ADVNORM_RESULTS': str(tmp_path/'results')}
    def nb(name, yaml):
        r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/name), str(tmp_path/name), '--log-level',
                            'WARNING', '-y', yaml], capture_output=True, text=True, cwd=tmp_path, timeout=1800, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.dumps(json.loads((tmp_path/name).read_text())["cells"], ensure_ascii=False)
    t1 = nb('table1.ipynb', '{exps: [5, 7], seeds: [0], preset: smoke, splits: [subject]}')
    assert 'exp7-smoke-subject-seed0' not in t1 and "split='subject'" in t1 and '| 7 | Adversarially normalized' in t1
    out = nb('beyond.ipynb', f'{{seeds: [0], preset: smoke, budgets: [1], budget_lambdas: [0.5, 1.0], severity_levels: [1.0], '
                             f'severity_seeds: [0], out: "{tmp_path}", journal_lambdas: [1.0], journal_seeds: [0], journal_splits: [patch], '
                             f'standardization_seeds: [0], standardization_splits: [patch], '
                             f'variants: ["exp 7, LSGAN", "exp 7, 3 domains"], variant_seeds: [0], variant_splits: [patch], '
                             f'severity_cpu_seeds: [0]}}')
    for label in ('1× steps, λ=0.5', '1× steps, λ=1', 'exp 5, 1× steps', 'exp 6, 1× steps'):
        assert f'| {label} |' in out, label                     # every budget variant ran and has its row
    assert (tmp_path/'runs'/'exp7-smoke-patch-seed0-lambda_adv=0.5'/'results.json').exists()
    assert (tmp_path/'severity.png').exists() and '**Intensity-shift severity' in out   # the reading was written
    assert (tmp_path/'results'/'exp7-smoke-subject-seed0'/'config.json').exists()   # the sweep kept the run's records
    assert '| 1 (kept) |' in out and '| 7-journal |' in out and 'exp 7-journal − exp 7' in out   # the journal row, its λ and pairs
    assert '**The journal objective.** λ kept: 1' in out   # and its reading
    assert '| 5-nyul |' in out and 'Nyúl − z-score' in out   # WhiteStripe and Nyúl beside z-score, and their reading
    assert '| exp 7, 3 domains − exp 7, log loss (Table 1) | patch | 1 |' in out   # a 3-domain run paired with exp 7 on their shared domains
    assert '**Exp 7 with one thing changed, patch split**' in out and 'LSGAN ' in out   # and the variants' reading
    assert (tmp_path/'severity-cpu.png').exists() and '| 1 | 7-journal | 1 |' in out   # the journal row in the CPU severity sweep
    assert '**The journal objective as the shift grows (CPU).** Exp 7-journal − exp 7' in out   # and its reading
