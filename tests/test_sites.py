"""Adversarial normalization on one's own sites (advnorm.sites): a 3-domain spec whose third domain is a plain-NIfTI
folder outside data/, run through papermill and the command line, scored and segmented from its checkpoint alone;
and every bad spec stopped before anything is read or written, with one line naming the domain and the field."""
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np, nibabel as nib, pytest, torch
from advnorm.core import load_checkpoint, atomic_save
from advnorm.data import load_domains
from advnorm.experiments import get_experiment, get_preset
from advnorm.sites import write_nifti_domain
from advnorm.train import main, train
from advnorm.rundata import resolve_data
from advnorm.runner import evaluate_run
from advnorm.evaluate import load_run

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
ISEG_VALUES = '0:0,10:1,150:2,250:3'

@pytest.fixture(scope='module')
def sites(tmp_path_factory):
    "The smoke benchmark's iSEG and MRBrainS folders, and 'Site3': its low-field scans as plain NIfTI outside data/."
    bench = resolve_data('synthetic', get_preset('smoke'), get_experiment('7-k3'))
    t = tmp_path_factory.mktemp('sites')
    low = load_domains(bench, spacing=None, domains=['LowField'])['LowField'][:3]
    write_nifti_domain(low, t/'site3', label_values=(0, 10, 150, 250))        # labels stored the iSEG way
    (t/'empty').mkdir()
    return {'root': t, 'iSEG': bench/'iSEG', 'MRBrainS': bench/'MRBrainS'/'TrainingData', 'Site3': t/'site3'}

def _per_domain(res, domains):
    "Dice and HD95 for every domain and the mean, three tissues each."
    assert list(res['patch_dice']) == [*domains, 'mean'] and list(res['volume_dice']) == [*domains, 'mean']
    assert list(res['hd95_mm']) == [*domains, 'mean'] and res['test_domains'] == list(domains)
    assert all(len(v) == 3 and all(0 <= x <= 1 for x in v) for v in res['patch_dice'].values())

@pytest.mark.slow
def test_papermill_three_domain_spec(sites, tmp_path):
    "`papermill nbs/run_experiment.ipynb -p spec my_sites.yaml`: iSEG + MRBrainS in their own layouts + Site3 in plain NIfTI."
    spec = tmp_path/'my_sites.yaml'
    site3 = os.path.relpath(sites['Site3'], tmp_path)                       # relative: from the spec file's folder
    spec.write_text(f"""\
norm: G
adversarial: true
train:
  - {{name: iSEG, folder: {sites['iSEG']}, layout: iseg}}
  - {{name: MRBrainS, folder: {sites['MRBrainS']}, layout: mrbrains}}
  - {{name: Site3, folder: {site3}, layout: nifti, label_map: {{0: 0, 10: 1, 150: 2, 250: 3}}}}
""")
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'run_experiment.ipynb'), str(tmp_path/'o.ipynb'),
                        '--log-level', 'WARNING', '-p', 'spec', 'my_sites.yaml', '-p', 'preset', 'smoke', '-p', 'out', str(out)],
                       capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert res['exp'] == 'my_sites' and res['preset'] == 'smoke' and res['train_domains'] == ['iSEG', 'MRBrainS', 'Site3']
    _per_domain(res, ['iSEG', 'MRBrainS', 'Site3'])
    assert 0 <= res['jsd_bits']['input'] <= np.log2(3) and 'normalized' in res['jsd_bits']
    assert [(s['name'], s['layout'], s['folder']) for s in res['sites']] == [
        ('iSEG', 'iseg', str(sites['iSEG'])), ('MRBrainS', 'mrbrains', str(sites['MRBrainS'])), ('Site3', 'nifti', str(sites['Site3']))]
    assert all(Path(p).exists() for p in res['figures'].values())

@pytest.mark.slow
def test_cli_domains_then_evaluate_and_segment(sites, tmp_path):
    "`advnorm-train --domain ...`: built-in iSEG and MRBrainS from --data, Site3 from its folder; K = 3 everywhere."
    out = tmp_path/'run'
    r = subprocess.run(['advnorm-train', '--domain', 'iSEG', '--domain', 'MRBrainS', '--domain', f'Site3={sites["Site3"]}:nifti',
                        '--label-map', f'Site3={ISEG_VALUES}', '--norm', 'G', '--adversarial', '--preset', 'smoke',
                        '--seed', '1', '--out', str(out), '--no-progress'], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(out/'checkpoint.pt')
    cfg = ck['config']
    assert cfg['exp'] == 'iSEG+MRBrainS+Site3' and cfg['experiment']['sites'][0]['label_map'] == {0: 0, 10: 1, 150: 2, 250: 3}
    assert cfg['preset']['batch_size'] % 3 == 0                        # every batch holds the 3 domains in equal shares
    _, nets, _ = load_run(out)
    assert nets['D'].head.out_features == 4                              # K + 1
    res = evaluate_run(out, device='cpu', progress=False)                # from what the checkpoint records
    _per_domain(res, ['iSEG', 'MRBrainS', 'Site3'])
    scan, seg = sites['Site3']/'2'/'t1.nii.gz', tmp_path/'seg.nii.gz'
    r = subprocess.run(['advnorm-segment', str(scan), '--checkpoint', str(out/'checkpoint.pt'), '--out', str(seg), '--no-progress'],
                       capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    labels = np.asarray(nib.load(seg).dataobj)
    assert labels.shape == nib.load(scan).shape and set(np.unique(labels)) <= {0, 1, 2, 3}

# --- every bad spec: exit code 2, one line naming the domain and the field, nothing written ------------------------
def _site(name='Site3', folder='Site3', layout=''):
    return lambda s: f'{name}={s[folder] if folder in s else s["root"]/folder}' + (f':{layout}' if layout else '')

def _map(name): return lambda s: f'{name}={ISEG_VALUES}'

ERRORS = {   # id: (flags, each a string or a function of the `sites` fixture, message)
    'missing-folder':      (['--domain', _site('A', 'nope'), '--domain', _site('B')], r"domain 'A': folder='.*/nope': no such folder"),
    'no-subjects':         (['--domain', _site('A', 'empty'), '--domain', _site('B')],
                            r"domain 'A': folder='.*/empty': no subjects in the 'nifti' layout"),
    'named-twice':         (['--domain', _site('A'), '--domain', _site('A')], r"domain 'A': named twice in train"),
    'named-twice-in-test': (['--domain', _site('A'), '--domain', _site('B'), '--test-domain', _site('B')], r"domain 'B': named twice"),
    'unknown-layout':      (['--domain', _site('A'), '--domain', _site('B', layout='dicom')],
                            r"domain 'B': layout='dicom': expected one of iseg, mrbrains, nifti"),
    'unknown-norm':        (['--domain', _site('A'), '--domain', _site('B'), '--norm', 'histeq'], r"norm='histeq': expected one of"),
    'test-only-under-nyul': (['--domain', _site('A'), '--domain', _site('B'), '--test-domain', _site('C'), '--norm', 'nyul'],
                             r"test domain 'C': not a training domain, but norm='nyul' fits"),
    'adversarial-one-domain': (['--domain', _site('A'), '--adversarial'],
                               r"adversarial=True: needs at least 2 training domains for D to tell apart, got 1: \['A'\]"),
    'adversarial-without-G': (['--domain', _site('A'), '--domain', _site('B'), '--norm', 'zscore', '--adversarial'],
                              r"adversarial=True: needs norm='G'"),
    'not-a-built-in-domain': (['--domain', 'Site9', '--domain', _site('B')], r"domain 'Site9': folder: missing, and 'Site9' is not a built-in"),
    'bad-label-map':       (['--domain', _site('A'), '--domain', _site('B'), '--label-map', 'A=10:1,150:5'],
                            r"domain 'A': label_map: '150' -> '5': expected a class 0..3"),
    'unmapped-label-value': (['--domain', _site('A'), '--domain', _site('B'), '--label-map', 'A=0:0,10:1,150:2,250:3', '--norm', 'zscore'],
                             r"site3/1/labels\.nii\.gz: label values \['10', '150', '250'\] are not in the map \[0, 1, 2, 3\]"),
    'exp-and-domain':      (['--exp', '7', '--domain', _site('A')], r'--exp and --domain: give only one of them'),
    'norm-without-domain': (['--norm', 'zscore'], r'--norm: only with --domain'),
}

@pytest.mark.parametrize('flags, msg', ERRORS.values(), ids=ERRORS)
def test_spec_errors_exit_2_nothing_written(flags, msg, sites, tmp_path, capsys):
    out = tmp_path/'run'
    argv = [f(sites) if callable(f) else f for f in flags] + ['--preset', 'smoke', '--out', str(out), '--no-progress']
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.search(msg, err) and 'Traceback' not in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith('advnorm-train: error: '), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []

@pytest.mark.parametrize('text, msg', [('train: [A=site3]\nadverserial: true\n', r"unknown key\(s\) \['adverserial'\]"),
                                       ('norm: G\n', r'train: missing'), ('train: [A=site3\n', r'not valid YAML')])
def test_spec_file_errors(text, msg, sites, tmp_path, capsys):
    (sites['root']/'bad.yaml').write_text(text)
    with pytest.raises(SystemExit) as e: main(['--spec', str(sites['root']/'bad.yaml'), '--preset', 'smoke', '--out', str(tmp_path/'run')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.search(msg, err) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path/'run').exists()

@pytest.mark.slow
def test_papermill_bad_spec_stops_before_writing(sites, tmp_path):
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'run_experiment.ipynb'), str(tmp_path/'o.ipynb'),
                        '--log-level', 'WARNING', '-y', f'spec: {{train: ["A={sites["Site3"]}"], adversarial: true}}',
                        '-p', 'preset', 'smoke', '-p', 'out', str(out)], capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
    assert r.returncode != 0 and 'adversarial=True: needs at least 2 training domains' in r.stderr, r.stderr[-2000:]
    assert not out.exists()

@pytest.mark.slow
def test_checkpoint_from_before_sites_still_loads(tmp_path):
    "A built-in run whose config predates `sites` is scored, resumed and segmented as before (its registry row)."
    run = train(7, 'smoke', out=tmp_path/'old', device='cpu', progress=False, max_steps=2)
    ck = load_checkpoint(run/'checkpoint.pt')
    del ck['config']['experiment']['sites']
    atomic_save(ck, run/'checkpoint.pt')
    cfg, nets, _ = load_run(run)
    assert cfg['exp'] == 7 and sorted(nets) == ['D', 'G', 'S'] and nets['D'].head.out_features == 3
    train(7, 'smoke', out=run, device='cpu', progress=False, resume=True, max_steps=3)
    assert load_checkpoint(run/'checkpoint.pt')['state']['step'] == 3
    from advnorm.segment import load_segmenter
    assert load_segmenter(run/'checkpoint.pt').exp == get_experiment(7)

@pytest.mark.slow
def test_resume_refuses_another_spec_of_the_same_name(sites, tmp_path):
    "A run folder holds one experiment: a spec with the same name but other settings does not continue it."
    from advnorm.sites import Site, make_experiment
    ab = [Site(n, str(sites['Site3']), 'nifti', {0: 0, 10: 1, 150: 2, 250: 3}) for n in 'AB']
    run = train(make_experiment(ab, norm='zscore', name='pair'), 'smoke', out=tmp_path/'run', device='cpu', progress=False, max_steps=1)
    with pytest.raises(ValueError, match=r"is another run .*not resumed: .*experiment.norm: 'zscore' in the run, 'none' asked"):
        train(make_experiment(ab, norm='none', name='pair'), 'smoke', out=run, device='cpu', progress=False, resume=True)
    train(make_experiment(ab, norm='zscore', name='pair'), 'smoke', out=run, device='cpu', progress=False, resume=True, max_steps=2)
    assert load_checkpoint(run/'checkpoint.pt')['state']['step'] == 2
