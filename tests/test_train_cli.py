"The trainer from the command line: console script, bad arguments, and 2-process DDP with gloo through torchrun."
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch

pytestmark = pytest.mark.slow   # console scripts and torchrun in subprocesses, some training

def _run(args, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kw)

@pytest.mark.parametrize('args, msg', [(['--exp', '9'], 'exp=9'), (['--preset', 'huge'], "preset='huge'"),
                                       (['--data', '/no/such/folder'], '/no/such/folder')])
def test_bad_arguments(args, msg, tmp_path):
    r = _run(['advnorm-train', '--preset', 'smoke', '--out', str(tmp_path/'run'), *args])
    assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr

def test_torchrun_gloo_two_ranks_same_weights(tmp_path):
    out = tmp_path/'ddp'
    r = _run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
              '-m', 'advnorm.train', '--exp', '7', '--preset', 'smoke', '--out', str(out), '--device', 'cpu', '--no-progress'])
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    sums = [x for rec in recs if 'rank_weight_sums' in rec for x in rec['rank_weight_sums']]
    assert len(sums) == 2 and sums[0] == sums[1]          # both ranks ended with identical weights
    ck = torch.load(out/'checkpoint.pt', weights_only=True)
    assert ck['config']['world_size'] == 2 and ck['state']['step'] == 6

def test_no_deterministic_is_recorded(tmp_path):
    "`--no-deterministic` (cuDNN autotuning on GPUs) reaches the trainer and is written to config.json."
    r = _run(['advnorm-train', '--preset', 'smoke', '--out', str(tmp_path/'run'), '--no-deterministic',
              '--max-steps', '2', '--no-progress'])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path/'run'/'config.json').read_text())['deterministic'] is False
