"""Faults and bad inputs across readers, generator, patches, trainer, papermill and CLI: each stops with one error that
names the culprit and leaves no partial output. A SIGKILLed run resumes to the very same weights, and a failing DDP
rank ends the whole job instead of hanging. (The notebooks test their own bad inputs; these are the ones they don't.)"""
import json, os, random, re, shlex, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import numpy as np, nibabel as nib, pytest, torch
from advnorm.core import atomic_save, load_checkpoint
from advnorm.data import load_domains, Subject
from advnorm.patches import extract_patches, make_splits, PatchDataset, DomainBalancedSampler
from advnorm.experiments import get_preset
from advnorm.benchmark import WRITERS, make_benchmark, ensure_benchmark
from advnorm.train import train, main

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
MR = 'MRBrainS/TrainingData'
AFFINE = np.diag([4., 4., 4., 1.])        # 4 mm voxels: the smoke preset's grid, so the readers do not resample

def _subject(n: int, shape=(40, 40, 40)):
    "A blob of random tissue (labels 1..3) in a 40³ volume, image = 100 x label + noise inside, 0 outside."
    rng = np.random.default_rng(n)
    label = np.zeros(shape, np.uint8); label[4:36, 4:36, 4:36] = rng.integers(1, 4, (32, 32, 32))
    return ((label * 100. + rng.uniform(1, 10, shape)) * (label > 0)).astype(np.float32), label

def _write_root(root: Path, n: int = 3, empty: tuple = ()) -> Path:
    "A tiny data root in the real layouts (n subjects per domain); the domains in `empty` have no foreground labels."
    for domain, folder in (('iSEG', root/'iSEG'), ('MRBrainS', root/MR)):
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            image, label = _subject(i)
            WRITERS[domain](folder, i, image, label * (domain not in empty), AFFINE)
    return root

@pytest.fixture
def root(tmp_path): return _write_root(tmp_path/'data')

def _truncate(p: Path, n: int): p.write_bytes(p.read_bytes()[:n])

def _nan_label(p: Path):
    x = np.asanyarray(nib.load(p).dataobj).astype(np.float32); x.flat[0] = np.nan
    nib.save(nib.AnalyzeImage(x, AFFINE), p)

# --- readers: corrupt, truncated, non-finite, wrong-rank files and wrong data roots ---------------------------------
READER_FAULTS = {   # id: (how the data root is damaged, the folder given to load_domains, error, message)
    'garbage-nifti':      (lambda r: (r/MR/'1/T1_1mm.nii').write_bytes(b'not a nifti' * 20), '', ValueError,
                           r'1/T1_1mm\.nii: could not be read'),
    'empty-label-file':   (lambda r: (r/MR/'2/LabelsForTesting.nii').write_bytes(b''), '', ValueError,
                           r'2/LabelsForTesting\.nii: could not be read .*Empty file'),
    'truncated-img-half': (lambda r: _truncate(r/'iSEG/subject-2-T1.img', 100), '', ValueError,
                           r'subject-2-T1\.hdr: could not be read .*Expected \d+ bytes, got 100'),
    'zeroed-header':      (lambda r: (r/'iSEG/subject-3-label.hdr').write_bytes(bytes(348)), '', ValueError,
                           r'subject-3-label\.hdr: could not be read'),
    'nan-in-label-file':  (lambda r: _nan_label(r/'iSEG/subject-1-label.hdr'), '', ValueError,
                           r'subject-1-label\.hdr: 1 NaN/Inf voxels'),
    'multichannel-image': (lambda r: nib.save(nib.Nifti1Image(np.ones((40, 40, 40, 3), np.float32), AFFINE),
                                              r/MR/'3/T1_1mm.nii'), '', ValueError,
                           r'3/T1_1mm\.nii: expected a 3-D volume, got shape \(40, 40, 40, 3\)'),
    'root-lacks-mrbrains': (lambda r: shutil.rmtree(r/'MRBrainS'), '', FileNotFoundError,
                            r'MRBrainS TrainingData folder not found: .*/data/MRBrainS/TrainingData'),
    'root-is-iseg-folder': (lambda r: None, 'iSEG', FileNotFoundError, r'iSEG folder not found: .*/data/iSEG/iSEG'),
}

@pytest.mark.parametrize('damage, sub, exc, msg', READER_FAULTS.values(), ids=READER_FAULTS)
def test_reader_faults(damage, sub, exc, msg, root):
    damage(root)
    with pytest.raises(exc, match=msg): load_domains(root/sub, spacing=None, domains=['iSEG', 'MRBrainS'])

# --- generator: non-finite parameters and output that cannot be written ----------------------------------------------
GENERATOR_FAULTS = {   # id: (call with the tmp folder, error, message, path that must not appear)
    'voxel-nan':   (lambda t: make_benchmark(t/'b', voxel_mm=float('nan')), ValueError, r'voxel_mm=nan', 'b'),
    'voxel-inf':   (lambda t: make_benchmark(t/'b', voxel_mm=float('inf')), ValueError, r'voxel_mm=inf', 'b'),
    'out-is-file': (lambda t: make_benchmark(t/'file', 1, 1, 1, 8.0), FileExistsError, r"out_dir='.*/file' exists", None),
    'out-under-file': (lambda t: make_benchmark(t/'file'/'b', 1, 1, 1, 8.0), NotADirectoryError, r'/file/b', None),
    'cache-under-file': (lambda t: ensure_benchmark(0, 1, 1, 8.0, root=t/'file'/'cache', progress=False),
                         NotADirectoryError, r'/file/cache', None),
}

@pytest.mark.parametrize('call, exc, msg, absent', GENERATOR_FAULTS.values(), ids=GENERATOR_FAULTS)
def test_generator_faults(call, exc, msg, absent, tmp_path):
    (tmp_path/'file').write_text('keep me')
    with pytest.raises(exc, match=msg): call(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file'] and (tmp_path/'file').read_text() == 'keep me'

# --- patches, dataset rows and sampler -----------------------------------------------------------------------------
def _splits():
    (im1, lab1), (im2, lab2) = _subject(1), _subject(2)
    subs = [Subject(f'A-{i}', 'A', im, lab, AFFINE, (4., 4., 4.)) for i, (im, lab) in enumerate([(im1, lab1), (im2, lab2)])]
    return make_splits({'A': subs}, size=16, stride=8)

IM, LAB = _subject(1)
PATCH_FAULTS = {
    '2d-image':          (lambda: extract_patches(IM[0], LAB[0]), r'image \(40, 40\) and label \(40, 40\) must be 3-D'),
    '4d-image':          (lambda: extract_patches(IM[None], LAB[None]), r'image \(1, 40, 40, 40\) .* must be 3-D'),
    'fractional-size':   (lambda: extract_patches(IM, LAB, size=2.5), r'size=2\.5'),
    'rows-3-columns':    (lambda: PatchDataset(_splits(), np.zeros((5, 3), int), size=16), r'got shape \(5, 3\)'),
    'rows-unknown-subject': (lambda: PatchDataset(_splits(), np.array([[7, 0, 0, 0]]), size=16), r'subject index < 2'),
    'sampler-no-items':  (lambda: DomainBalancedSampler(np.zeros(0, int), 4), r'domain_of_item is empty'),
    'sampler-no-samples': (lambda: DomainBalancedSampler([0, 1], 2, num_samples=0), r'num_samples=0'),
}

@pytest.mark.parametrize('call, msg', PATCH_FAULTS.values(), ids=PATCH_FAULTS)
def test_patch_faults(call, msg):
    with pytest.raises(ValueError, match=msg): call()

# --- trainer: bad overrides, foreign or corrupt checkpoints, incomplete data -----------------------------------------
def _corrupt_checkpoint(out): out.mkdir(); (out/'checkpoint.pt').write_bytes(b'half a checkpoint')
def _foreign_checkpoint(out):
    out.mkdir(); atomic_save({'config': {'exp': 1, 'preset': {'name': 'smoke'}}, 'state': {}, 'nets': {}}, out/'checkpoint.pt')

TRAINER_FAULTS = {   # id: (prepare(out, data root), train kwargs, error, message)
    'batch-not-multiple-of-domains': (None, dict(batch_size=3), ValueError, r'batch_size=3: .*multiple of the 2 domains'),
    'unknown-optimizer':    (None, dict(optimizer='rmsprop'), ValueError, r"optimizer='rmsprop'"),
    'resume-corrupt-checkpoint': (lambda o, r: _corrupt_checkpoint(o), dict(resume=True), ValueError,
                                  r'/run/checkpoint\.pt is not a readable advnorm checkpoint'),
    'resume-other-experiment': (lambda o, r: _foreign_checkpoint(o), dict(resume=True), ValueError,
                                r"checkpoint\.pt is another run .*, not resumed: exp: 1 in the run, 7 asked"),
    'data-root-lacks-a-domain': (lambda o, r: shutil.rmtree(r/'MRBrainS'), {}, FileNotFoundError,
                                 r'MRBrainS TrainingData folder not found: .*/MRBrainS/TrainingData'),
    'empty-foreground': (lambda o, r: (shutil.rmtree(r), _write_root(r, empty=('iSEG', 'MRBrainS'))), dict(exp=1),
                         ValueError, r"iSEG: subject\(s\) \[.*\] give no patch"),
}

def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None

@pytest.mark.parametrize('prepare, kw, exc, msg', TRAINER_FAULTS.values(), ids=TRAINER_FAULTS)
def test_trainer_faults(prepare, kw, exc, msg, root, tmp_path):
    out = tmp_path/'run'
    if prepare: prepare(out, root)
    before = _snapshot(out)
    with pytest.raises(exc, match=msg): train(**{'exp': 7, 'preset': 'smoke', 'data': root, 'out': out,
                                                 'device': 'cpu', 'progress': False, **kw})
    assert _snapshot(out) == before           # nothing written, nothing removed

# --- the command line (in process: the same `main` the console script calls) ----------------------------------------
def _cli_corrupt(out, root): _corrupt_checkpoint(out); return ['--resume']

CLI_FAULTS = {   # id: (prepare(out, data root) -> extra arguments, message)
    'device-tpu':     (lambda o, r: ['--device', 'tpu'], r"device='tpu'"),
    'amp-fp16-on-cpu': (lambda o, r: ['--amp', 'fp16', '--device', 'cpu'], r"amp='fp16' needs CUDA"),
    'resume-corrupt-checkpoint': (_cli_corrupt, r'/run/checkpoint\.pt is not a readable advnorm checkpoint'),
    'data-is-a-file': (lambda o, r: ['--data', str(r/'iSEG'/'subject-1-T1.hdr')], r"data='.*subject-1-T1\.hdr': no such folder"),
    'exp-not-a-number': (lambda o, r: ['--exp', 'seven'], r"exp='seven': expected one of \[1, 2, 3, 4, 5, 6, 7\]"),
}

@pytest.mark.parametrize('prepare, msg', CLI_FAULTS.values(), ids=CLI_FAULTS)
def test_cli_faults(prepare, msg, root, tmp_path, capsys):
    out = tmp_path/'run'
    extra = prepare(out, root); before = _snapshot(out)
    with pytest.raises(SystemExit) as e:
        main(['--exp', '7', '--preset', 'smoke', '--data', str(root), '--out', str(out), '--no-progress', *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.search(msg, err) and 'Traceback' not in err, err
    assert len(re.findall(r'^advnorm-train: error:', err, re.M)) == 1, err
    assert _snapshot(out) == before

# --- papermill parameters: checked or failing before anything is written --------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('name, value, msg', [('device', 'tpu', "device='tpu'"), ('seed', 1.5, 'seed=1.5')])
def test_papermill_bad_parameter(name, value, msg, tmp_path):
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'run_experiment.ipynb'), str(tmp_path/'o.ipynb'),
                        '--log-level', 'WARNING', '-p', 'exp', '1', '-p', 'preset', 'smoke', '-p', 'out', str(out),
                        '-p', name, str(value)], capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=300)
    assert r.returncode != 0 and msg in r.stderr, r.stderr[-2000:]
    assert not out.exists()

# --- values that must be refused before any data is loaded or file written ------------------------------------------
EARLY_FAULTS = {   # id: (train kwargs, error, message)
    'patch-not-divisible-by-unet': (dict(patch=31), ValueError, r'patch=31: expected a multiple of 2'),
    'negative-seed':        (dict(seed=-1), ValueError, r'seed=-1: expected an integer >= 0'),
    'lr-missing-a-network': (dict(lr={'S': 1e-3}), ValueError, r"lr=\{'S': 0\.001\}: expected a learning rate > 0 for each"),
    'nan-lambda-adv':       (dict(lambda_adv=float('nan')), ValueError, r'lambda_adv=nan: expected a finite number'),
    'out-under-a-file':     (dict(out='{tmp}/file/run'), NotADirectoryError, r"out='.*/file/run': cannot be created, .*/file is a file"),
}

@pytest.mark.parametrize('kw, exc, msg', EARLY_FAULTS.values(), ids=EARLY_FAULTS)
def test_early_faults(kw, exc, msg, root, tmp_path):
    (tmp_path/'file').write_text('keep me')
    kw = {'out': str(tmp_path/'run'), **kw}; kw['out'] = kw['out'].format(tmp=tmp_path)
    with pytest.raises(exc, match=msg): train(7, 'smoke', root, device='cpu', progress=False, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'file'] and (tmp_path/'file').read_text() == 'keep me'

def test_cli_out_under_a_file(root, tmp_path, capsys):
    (tmp_path/'file').write_text('keep me')
    with pytest.raises(SystemExit) as e:
        main(['--exp', '7', '--preset', 'smoke', '--data', str(root), '--out', str(tmp_path/'file'/'run'), '--no-progress'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'file/run' in err and 'is a file' in err and 'Traceback' not in err, err

def test_domain_without_foreground_is_refused(root, tmp_path):
    "exp 7 with one domain whose labels are all background must not silently train on the other domain alone."
    shutil.rmtree(root); _write_root(root, empty=('MRBrainS',))
    with pytest.raises(ValueError, match=r"MRBrainS: subject\(s\) \[.*\] give no patch"):
        train(7, 'smoke', root, tmp_path/'run', device='cpu', progress=False)
    assert not (tmp_path/'run').exists()

# --- SIGKILL at a random step, resume: the same weights as an uninterrupted run --------------------------------------
def _train_proc(out: Path, epochs: int, resume=False):
    code = (f'from advnorm.train import train; train(7, "smoke", out={str(out)!r}, epochs={epochs}, resume={resume}, '
            f'device="cpu", progress=False)')
    return subprocess.Popen([sys.executable, '-c', code], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

def _last_step(metrics: Path) -> int:
    steps = [0]
    for line in (metrics.read_text().splitlines() if metrics.exists() else []):
        try: steps.append(json.loads(line)['step'])
        except (ValueError, KeyError): pass      # a line being written
    return max(steps)

@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tmp_path):
    p = get_preset('smoke'); epochs = 5; total = epochs * p.steps_per_epoch
    ensure_benchmark(**p.benchmark, progress=False)  # generated once, before two runs race for it
    seed = random.randrange(10**6); rng = random.Random(seed)
    target = rng.randint(p.steps_per_epoch + 1, total - 3)     # a step after the first checkpoint, before the end
    ref, cut = tmp_path/'uninterrupted', tmp_path/'killed'
    full, victim = _train_proc(ref, epochs), _train_proc(cut, epochs)
    t0 = time.time()
    while victim.poll() is None and time.time() - t0 < 300:
        if (cut/'checkpoint.pt').exists() and _last_step(cut/'metrics.jsonl') >= target:
            time.sleep(rng.uniform(0, 0.3)); victim.kill(); break
        time.sleep(0.005)
    assert victim.wait(60) == -9, f'the run ended before it was killed (seed {seed}): {victim.stderr.read()[-2000:]}'
    ck = load_checkpoint(cut/'checkpoint.pt')      # whole, whatever the moment of the kill
    assert ck['state']['step_in_epoch'] == 0 and 0 < ck['state']['step'] < total, (seed, ck['state'])
    resumed = _train_proc(cut, epochs, resume=True)
    assert resumed.wait(300) == 0, resumed.stderr.read()[-3000:]
    assert full.wait(300) == 0, full.stderr.read()[-3000:]
    a, b = load_checkpoint(ref/'checkpoint.pt'), load_checkpoint(cut/'checkpoint.pt')
    assert a['state']['step'] == total and sorted(a['nets']) == ['D', 'G', 'S']
    assert a['config']['run_id'] != b['config']['run_id']      # two runs (each has its own id) ...
    for k in ('nets', 'opts', 'scheds', 'scaler', 'state', 'rng'):   # ... that end on the very same weights
        _assert_identical(a[k], b[k], f'checkpoint[{k!r}] (seed {seed}, killed after step {target})')

def _assert_identical(a, b, where):
    "Every weight, optimiser moment, RNG state and counter of two checkpoints is the same, bit for bit."
    if torch.is_tensor(a): assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a: _assert_identical(a[k], b[k], f'{where}[{k!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)): _assert_identical(x, y, f'{where}[{i}]')
    else: assert a == b, where

# --- DDP: one rank fails, the whole job ends in bounded time ---------------------------------------------------------
RANK_SCRIPT = '''
import sys, time, torch, torch.distributed as dist
from advnorm.runtime import setup_distributed
rank, world, dev = setup_distributed('cpu', timeout_s=10)
if rank == 1:
    if sys.argv[1] == 'raises': raise RuntimeError('rank 1 fails on purpose')
    time.sleep(600)                                      # 'hangs': never reaches the collective
t = torch.ones(1); dist.all_reduce(t); dist.barrier()   # rank 0 waits for rank 1 here
print('rank', rank, 'passed the collective')
'''

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.mark.slow
@pytest.mark.parametrize('mode, culprit', [('raises', 'rank 1 fails on purpose'), ('hangs', 'Timed out')])
def test_ddp_rank_failure_ends_the_job(mode, culprit, tmp_path):
    script = tmp_path/'ranks.py'; script.write_text(RANK_SCRIPT)
    t0 = time.time()
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                        str(_free_port()), str(script), mode], capture_output=True, text=True, env=ENV, timeout=180)
    assert r.returncode != 0 and time.time() - t0 < 120, r.stderr[-3000:]
    assert culprit in r.stderr and 'passed the collective' not in r.stdout, r.stderr[-3000:]

# --- a run folder is one run: resume and re-use refuse another run, interrupts keep the work ---------------------------
from advnorm.runner import evaluate_run
from advnorm.segment import main as segment_main

def _cli(args, capsys, entry=main):
    "Run a console entry point in process: (exit code, stderr)."
    try: entry(args); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err

def _train_args(root, out, *extra):
    return ['--exp', '7', '--preset', 'smoke', '--data', str(root), '--out', str(out), '--no-progress', *extra]

@pytest.fixture
def finished(root, tmp_path, capsys):
    "A finished exp 7 smoke run (patch split, seed 0) on the tiny data root, with a record and a figure beside it."
    out = tmp_path/'run'
    code, err = _cli(_train_args(root, out), capsys)
    assert code == 0, err
    (out/'results.json').write_text('{"exp": 7}'); (out/'examples.png').write_bytes(b'png')
    return out

RESUME_AS_ANOTHER = {   # id: (extra arguments, what the message must name: the field and both values)
    'split': (['--split', 'subject'], ["split: 'patch' in the run, 'subject' asked"]),
    'seed': (['--seed', '3'], ['seed: 0 in the run, 3 asked']),
    'split-and-seed': (['--split', 'subject', '--seed', '3'], ["split: 'patch' in the run, 'subject' asked", 'seed: 0 in the run, 3 asked']),
    'data': (['--data', '{other}'], ["data: '{root}' in the run, '{other}' asked"]),
    'a-preset-field': (['--set', 'lambda_adv=0.1'], ['preset.lambda_adv: 1.0 in the run, 0.1 asked']),
}

@pytest.mark.slow
@pytest.mark.parametrize('extra, fields', RESUME_AS_ANOTHER.values(), ids=RESUME_AS_ANOTHER)
def test_resume_as_another_run_is_refused(extra, fields, finished, root, tmp_path, capsys):
    other = _write_root(tmp_path/'other')
    fmt = lambda s: s.format(root=root, other=other)
    before = _snapshot(finished)
    code, err = _cli(_train_args(root, finished, '--resume', *map(fmt, extra)), capsys)
    assert code == 2 and 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert 'is another run (exp 7' in err and all(fmt(f) in err for f in fields), err
    assert _snapshot(finished) == before                       # byte for byte, config.json included

@pytest.mark.slow
def test_training_into_a_finished_run_is_refused_unless_overwrite(finished, root, capsys):
    before = _snapshot(finished)
    args = ['--exp', '6', *_train_args(root, finished)[2:]]
    code, err = _cli(args, capsys)
    assert code == 2 and "holds a run (exp 7, preset 'smoke', patch split, seed 0, step 6 of 6)" in err and '--overwrite' in err, err
    assert _snapshot(finished) == before
    code, err = _cli(args + ['--overwrite'], capsys)
    assert code == 0, err
    assert json.loads((finished/'config.json').read_text())['exp'] == 6 == load_checkpoint(finished/'checkpoint.pt')['config']['exp']
    assert not (finished/'results.json').exists() and not (finished/'examples.png').exists()   # the old run's record and figure

@pytest.mark.slow
def test_papermill_out_holding_another_run_is_refused(finished, root, tmp_path):
    before = _snapshot(finished)
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'run_experiment.ipynb'), str(tmp_path/'o.ipynb'),
                        '--log-level', 'WARNING', '-p', 'exp', '7', '-p', 'preset', 'smoke', '-p', 'data', str(root),
                        '-p', 'out', str(finished), '-p', 'seed', '1'], capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=600)
    assert r.returncode != 0 and 'seed: 0 in the run, 1 asked' in r.stderr, r.stderr[-3000:]
    assert 'run_experiment: error:' in r.stderr and r.stderr.count('File "') <= 15, r.stderr[-3000:]   # papermill's own frames only
    assert _snapshot(finished) == before

@pytest.mark.slow
def test_scoring_refuses_a_folder_whose_config_is_another_runs(finished, root):
    (finished/'results.json').unlink()
    cfg = json.loads((finished/'config.json').read_text()); (finished/'config.json').write_text(json.dumps(cfg | {'seed': 5}))
    with pytest.raises(ValueError, match=r'config\.json is not the config of .*best\.pt \(they differ in seed\)'):
        evaluate_run(finished, device='cpu', progress=False)
    assert not (finished/'results.json').exists()

@pytest.mark.slow
def test_sigint_at_step_3_then_resume_gives_the_same_weights(root, tmp_path):
    "Ctrl-C in an epoch of 40 steps: one line saying how to resume, exit 130; resuming ends on the uninterrupted weights."
    cmd = lambda out: [sys.executable, '-m', 'advnorm.train', *_train_args(root, out, '--set', 'steps_per_epoch=40', '--set', 'epochs=2')]
    ref = subprocess.run(cmd(tmp_path/'ref'), capture_output=True, text=True, env=ENV, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]
    cut = tmp_path/'cut'
    p = subprocess.Popen(cmd(cut), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while p.poll() is None and _last_step(cut/'metrics.jsonl') < 3 and time.time() - t0 < 300: time.sleep(0.002)
    p.send_signal(signal.SIGINT)
    assert p.wait(300) == 130, p.stderr.read()[-3000:]
    err = p.stderr.read().strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err and 'resume with: advnorm-train ' in err, err
    st = load_checkpoint(cut/'checkpoint.pt')['state']
    assert 3 <= st['step'] < 40 and st['step_in_epoch'] == st['step'], st        # saved inside the first epoch
    again = shlex.split(err.split('resume with: ')[1])
    assert again[0] == 'advnorm-train' and '--resume' in again, again
    r = subprocess.run([sys.executable, '-m', 'advnorm.train', *again[1:]], capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_checkpoint(tmp_path/'ref'/'checkpoint.pt'), load_checkpoint(cut/'checkpoint.pt')
    assert a['state']['step'] == 80
    for k in ('nets', 'opts', 'scheds', 'state', 'rng'): _assert_identical(a[k], b[k], f'{k} after a SIGINT at step {st["step"]}')
    steps = [json.loads(l)['step'] for l in (cut/'metrics.jsonl').read_text().splitlines() if '"dice"' in l]
    assert steps == list(range(1, 81)), steps                  # every step logged once: the interrupted tail was cut

# --- one input check for training and segmentation ------------------------------------------------------------------
def _offset_image(root: Path, subject: int = 1, offset: float = -1000.):
    "Rewrite iSEG subject `subject`'s T1 with every intensity shifted by `offset` (e.g. all <= 0)."
    image, label = _subject(subject)
    WRITERS['iSEG'](root/'iSEG', subject, image + offset, label, AFFINE)
    return root/'iSEG'/f'subject-{subject}-T1.hdr'

@pytest.mark.slow
@pytest.mark.parametrize('offset, what', [(-1000., 'offset'), (None, 'all-zero')])
def test_training_and_segmentation_refuse_the_same_image_alike(offset, what, finished, root, tmp_path, capsys):
    if offset is None:
        image, label = _subject(2); WRITERS['iSEG'](root/'iSEG', 2, image * 0, label, AFFINE); img = root/'iSEG'/'subject-2-T1.hdr'
    else: img = _offset_image(root)
    code, train_err = _cli(_train_args(root, tmp_path/'new'), capsys)
    code2, seg_err = _cli([str(img), '--checkpoint', str(finished/'checkpoint.pt'), '--out', str(tmp_path/'seg.nii.gz'), '--no-progress'],
                          capsys, segment_main)
    msg = f'{img.name}: no voxel in the brain is > 0'
    assert code == code2 == 2 and msg in train_err and msg in seg_err, (train_err, seg_err)
    assert train_err.split(msg)[1] == seg_err.split(msg)[1]    # the same words after the file's name
    assert not (tmp_path/'new').exists() and not (tmp_path/'seg.nii.gz').exists()

# --- clear one-line messages ----------------------------------------------------------------------------------------
CLI_MESSAGES = {   # id: (extra train arguments, message)
    'huge-seed': (['--seed', '99999999999999999999'], 'seed=99999999999999999999: expected an integer >= 0 and < 2**63'),
    'max-steps-0': (['--max-steps', '0'], 'max_steps=0: expected an integer >= 1'),
    'max-steps-negative': (['--max-steps', '-3'], 'max_steps=-3: expected an integer >= 1'),
    'set-without-value': (['--set', 'epochs'], "--set 'epochs': expected FIELD=VALUE"),
}

@pytest.mark.parametrize('extra, msg', CLI_MESSAGES.values(), ids=CLI_MESSAGES)
def test_train_cli_messages(extra, msg, root, tmp_path, capsys):
    code, err = _cli(_train_args(root, tmp_path/'run', *extra), capsys)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path/'run').exists()

def _not_a_checkpoint(kind, finished, tmp_path):
    if kind == 'run-folder': return finished
    f = tmp_path/('random.pt' if kind == 'random-bytes' else 'config.json')
    f.write_bytes(os.urandom(4096)) if kind == 'random-bytes' else f.write_text((finished/'config.json').read_text())
    return f

@pytest.mark.slow
@pytest.mark.parametrize('kind, msg', [('random-bytes', 'random.pt is not a readable advnorm checkpoint'),
                                       ('config-json', 'config.json is not a readable advnorm checkpoint'),
                                       ('run-folder', 'is a folder: give {run}/best.pt or {run}/checkpoint.pt')])
def test_segment_checkpoint_messages(kind, msg, finished, root, tmp_path, capsys):
    ck = _not_a_checkpoint(kind, finished, tmp_path)
    code, err = _cli([str(root/'iSEG'/'subject-1-T1.hdr'), '--checkpoint', str(ck), '--out', str(tmp_path/'s.nii.gz'), '--no-progress'],
                     capsys, segment_main)
    assert code == 2 and msg.format(run=finished) in err and len(err.strip().splitlines()) == 1, err
    assert 'weights_only=False' not in err and 'file an issue' not in err.lower(), err

@pytest.mark.slow
def test_segment_out_dir_that_is_a_file(finished, root, tmp_path, capsys):
    (tmp_path/'segs').write_text('keep me')
    code, err = _cli([str(root/'iSEG'/'subject-1-T1.hdr'), '--checkpoint', str(finished/'best.pt'), '--out-dir', str(tmp_path/'segs')],
                     capsys, segment_main)
    assert code == 2 and 'segs: is a file, expected a folder' in err and 'Errno' not in err, err
    assert (tmp_path/'segs').read_text() == 'keep me'

def test_affine_mismatch_is_one_line(root):
    image, label = _subject(1)
    WRITERS['iSEG'](root/'iSEG', 1, image, label, AFFINE)
    lab = root/'iSEG'/'subject-1-label.hdr'
    data = np.asanyarray(nib.load(lab).dataobj).copy()   # a copy: the file is rewritten below
    nib.save(nib.AnalyzeImage(data, np.diag([4., 4., 5., 1.])), lab)
    with pytest.raises(ValueError) as e: load_domains(root, spacing=None)
    assert 'label affine does not match' in str(e.value) and '\n' not in str(e.value), str(e.value)

@pytest.mark.slow
def test_outputs_follow_the_umask_and_stale_temporaries_go(finished, root, tmp_path, capsys):
    stale = tmp_path/'.seg.nii.gz.k1ll3d.nii.gz'; stale.write_bytes(b'x' * 1000)      # what a SIGKILL mid-write leaves
    old = os.umask(0o022)
    try: code, err = _cli([str(root/'iSEG'/'subject-1-T1.hdr'), '--checkpoint', str(finished/'best.pt'), '--out', str(tmp_path/'seg.nii.gz'),
                           '--no-progress'], capsys, segment_main)
    finally: os.umask(old)
    assert code == 0, err
    assert not stale.exists() and (tmp_path/'seg.nii.gz').stat().st_mode & 0o777 == 0o644
    assert (finished/'checkpoint.pt').stat().st_mode & 0o777 == 0o666 & ~old   # written under the test's own umask

@pytest.mark.slow
def test_no_progress_draws_no_bar_while_generating(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'advnorm.train', '--exp', '1', '--preset', 'smoke', '--max-steps', '1', '--no-progress',
                        '--out', str(tmp_path/'run')], capture_output=True, text=True, timeout=600,
                       env={**ENV, 'ADVNORM_DATA': str(tmp_path/'data')})      # a fresh data folder: the benchmark is generated
    assert r.returncode == 0, r.stderr[-3000:]
    assert any((tmp_path/'data'/'synthetic').iterdir()) and '%|' not in r.stderr and 'it/s' not in r.stderr, r.stderr[-2000:]
