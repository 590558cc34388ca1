"""The GPU paths: fp16 / bf16 autocast steps, a run trained on CUDA and scored on a CPU, whole-volume inference that
agrees across devices, DDP over NCCL. Skipped where no CUDA GPU is present (CI and the 2-core CPU machines); run them
on a GPU machine with `pytest tests/test_gpu.py`."""
import json, os, socket, subprocess, sys
import numpy as np, pytest, torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def _batch(p, n, dev):
    g = torch.Generator().manual_seed(0); s = p.patch
    return (torch.rand(n, 1, s, s, s, generator=g).to(dev), torch.randint(0, 4, (n, s, s, s), generator=g).to(dev),
            (torch.arange(n) % 2).to(dev))

@pytest.mark.slow
@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
def test_joint_steps_under_autocast(amp):
    """G+S and D updates under autocast: finite losses in float32, every network moves; fp16 goes through a GradScaler,
    which skips the steps whose scaled gradients overflow (its first ones, while it lowers the scale)."""
    from advnorm.experiments import get_experiment, get_preset
    from advnorm.train import build_networks, build_optimizers, gs_step, d_step
    from advnorm.runtime import make_autocast
    dev, p = torch.device('cuda'), get_preset('smoke', amp=amp)
    torch.manual_seed(0)
    nets = {k: m.to(dev).train() for k, m in build_networks(get_experiment(7), p).items()}
    opts = build_optimizers(nets, p)
    autocast, scaled = make_autocast(amp, dev)
    assert scaled == (amp == 'fp16')
    scaler = torch.amp.GradScaler('cuda', enabled=scaled)
    flat = lambda m: torch.cat([q.detach().flatten() for q in m.parameters()]).clone()
    before = {k: flat(m) for k, m in nets.items()}
    x, y, z = _batch(p, 4, dev)
    G, S, D = nets['G'], nets['S'], nets['D']
    for _ in range(20):
        D.requires_grad_(False)
        gs, x_hat = gs_step(G, S, D, x, y, z, warmup=False, identity=False, lambda_adv=1.0, autocast=autocast)
        assert torch.isfinite(gs['total']) and gs['dice'].dtype == gs['adv'].dtype == torch.float32
        for k in 'GS': opts[k].zero_grad(set_to_none=True)
        scaler.scale(gs['total']).backward(); scaler.step(opts['G']); scaler.step(opts['S'])
        D.requires_grad_(True); opts['D'].zero_grad(set_to_none=True)
        ld, _ = d_step(D, x, x_hat, z, autocast)
        assert torch.isfinite(ld)
        scaler.scale(ld).backward(); scaler.step(opts['D']); scaler.update()
        if all(not torch.equal(flat(m), before[k]) for k, m in nets.items()): break
    for k, m in nets.items():
        assert torch.isfinite(flat(m)).all() and not torch.equal(flat(m), before[k]), k
    if scaled: assert scaler.get_scale() >= 1.0   # the scale settled instead of collapsing

@pytest.mark.slow
def test_cuda_run_scored_on_cpu(tmp_path):
    "A smoke run trained on the GPU with the default AMP (fp16): its checkpoint loads and is scored on a CPU-only setup."
    from advnorm.train import train
    from advnorm.evaluate import load_run
    from advnorm.runner import evaluate_run
    run = train(7, 'smoke', out=tmp_path/'run', device='cuda', progress=False)
    cfg = json.loads((run/'config.json').read_text())
    assert cfg['device'].startswith('cuda') and cfg['preset']['amp'] == 'auto'
    _, nets, st = load_run(run, 'cpu')
    assert all(q.device.type == 'cpu' for m in nets.values() for q in m.parameters())
    res = evaluate_run(run, device='cpu', progress=False)
    d = np.array(res['patch_dice']['mean'])
    assert d.shape == (3,) and np.isfinite(d).all() and ((0 <= d) & (d <= 1)).all()

def test_predict_volume_same_on_cuda_and_cpu():
    "Sliding-window inference of the same networks on the GPU and on the CPU: the same labels up to float round-off."
    from advnorm.experiments import get_experiment, get_preset
    from advnorm.train import build_networks
    from advnorm.evaluate import predict_volume
    p = get_preset('smoke'); torch.manual_seed(0)
    nets = build_networks(get_experiment(7), p)
    img = np.random.default_rng(0).random((40, 44, 36), dtype=np.float32)
    lab_cpu, g_cpu = predict_volume(nets['S'], img, nets['G'], roi=p.patch, device='cpu')
    lab_gpu, g_gpu = predict_volume(nets['S'], img, nets['G'], roi=p.patch, device='cuda')
    assert (lab_cpu == lab_gpu).mean() > 0.999 and np.abs(g_cpu - g_gpu).max() < 1e-3

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

_DDP_ONE_RANK = r'''
import os, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from advnorm.experiments import get_experiment, get_preset
from advnorm.train import build_networks
dist.init_process_group('nccl', rank=0, world_size=1); torch.cuda.set_device(0)
S = DDP(build_networks(get_experiment(1), get_preset('smoke'))['S'].cuda(), device_ids=[0])
S(torch.rand(2, 1, 16, 16, 16, device='cuda')).sum().backward()
assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in S.parameters())
print('backend', dist.get_backend(), 'nccl', '.'.join(map(str, torch.cuda.nccl.version())))
dist.destroy_process_group()
'''

@pytest.mark.slow
def test_nccl_ddp_one_rank():
    "NCCL initialises and DDP all-reduces gradients of our networks on one GPU (what a multi-GPU run does on each rank)."
    env = {**os.environ, 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(_free_port())}
    r = subprocess.run([sys.executable, '-c', _DDP_ONE_RANK], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and 'backend nccl' in r.stdout, r.stderr[-3000:]

@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 GPUs (NCCL refuses two ranks on one GPU)')
def test_torchrun_nccl_two_gpus_same_weights(tmp_path):
    "The trainer under torchrun on 2 GPUs: both ranks end with the same weights, as with gloo on the CPU."
    out = tmp_path/'ddp'
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                        str(_free_port()), '-m', 'advnorm.train', '--exp', '7', '--preset', 'smoke', '--out', str(out),
                        '--device', 'cuda', '--no-progress'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    sums = [x for rec in recs if 'rank_weight_sums' in rec for x in rec['rank_weight_sums']]
    assert len(sums) == 2 and sums[0] == sums[1]
