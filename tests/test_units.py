"""Quick checks of the modules that the other fast tests (`pytest -m "not slow"`) reach only through training, a notebook
or a subprocess: networks, losses, evaluate, tables, segment, realism and flops. Each one runs in well under a second
on the smoke sizes and checks a number or a message worked out by hand."""
import json, shutil
from pathlib import Path
import numpy as np, nibabel as nib, pytest, torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from advnorm.experiments import get_experiment, get_preset

ROOT = Path(__file__).resolve().parent.parent

# --- networks and losses: the smoke networks on one small batch ------------------------------------------------------
def test_smoke_networks_forward():
    "G starts as the identity (residual, last layer zero), S gives 4 class logits per voxel, D gives K + 1 logits."
    from advnorm.train import build_networks
    from advnorm.networks import UNet3D
    torch.manual_seed(0)
    nets = build_networks(get_experiment(7), get_preset('smoke'))
    assert sorted(nets) == ['D', 'G', 'S']
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad(): g, s, d = nets['G'](x), nets['S'](x), nets['D'](x)
    assert torch.equal(g, x)
    assert s.shape == (2, 4, 16, 16, 16) and d.shape == (2, 3) and torch.isfinite(s).all() and torch.isfinite(d).all()
    with pytest.raises(ValueError, match=r'needs spatial sizes divisible by 2, got \(15, 16, 16\)'):
        UNet3D(widths=(4, 8))(torch.rand(1, 1, 15, 16, 16))

def test_losses_on_known_logits():
    "Dice loss ~0 for logits that pick the target, far from 0 for uniform ones; D's loss small when D is right, large when wrong."
    from advnorm.losses import dice_loss, d_loss, g_adv_loss, get_adv_loss
    y = torch.randint(0, 4, (2, 8, 8, 8), generator=torch.Generator().manual_seed(0))
    right = 50 * F.one_hot(y, 4).movedim(-1, 1).float()
    assert dice_loss(right, y).item() < 1e-3 and dice_loss(torch.zeros_like(right), y).item() > 0.5
    with pytest.raises(ValueError, match='target must hold integer class indices'): dice_loss(right, y.float())
    z = torch.tensor([0, 1])                                       # K = 2 domains, class 2: 'generated'
    real_ok, fake_ok = 20 * F.one_hot(z, 3).float(), 20 * F.one_hot(torch.tensor([2, 2]), 3).float()
    assert d_loss(real_ok, z, fake_ok).item() < 1e-6 < 1 < d_loss(fake_ok, z, real_ok).item()
    assert g_adv_loss(fake_ok).item() > 10 > 1e-6 > g_adv_loss(real_ok).item()   # G pays when D spots its output
    with pytest.raises(ValueError, match=r"adv_loss='hinge': expected one of \['log', 'lsgan', 'wgan-gp', 'confusion'\]"):
        get_adv_loss('hinge')

# --- evaluate: the metrics on volumes whose answer is known -----------------------------------------------------------
def test_dice_hd95_and_jsd_by_hand():
    from advnorm.evaluate import dice_per_class, hd95, jsd
    t = np.zeros((6, 6, 6), np.uint8); t[:3] = 1; t[3:] = 2          # CSF and GM halves, no WM
    p = t.copy(); p[2] = 2                                            # one CSF slab labelled GM
    assert np.allclose(dice_per_class(t, t)[:2], 1) and np.isnan(dice_per_class(t, t)[2])
    assert np.allclose(dice_per_class(p, t)[:2], [2 * 72 / (72 + 108), 2 * 108 / (144 + 108)])
    a, b = np.zeros((8, 4, 4), np.uint8), np.zeros((8, 4, 4), np.uint8); a[0, 0, 0] = b[3, 0, 0] = 1
    h = hd95(a, b, spacing=(2., 1., 1.))                              # one voxel each, 3 voxels of 2 mm apart
    assert h[0] == 6.0 and np.isnan(h[1:]).all()
    assert jsd([[1, 2, 3], [1, 2, 3]]) == pytest.approx(0) and jsd([[5, 0], [0, 5]]) == pytest.approx(1)
    with pytest.raises(ValueError, match='expected K >= 2 histograms'): jsd([[1, 2, 3]])

# --- tables: a committed record checked and tabulated in process (tests/test_records.py runs the tool) ---------------
def test_check_record_and_table1(tmp_path):
    from advnorm.tables import check_record, table1
    for name in ('exp7-quick-patch-seed1', 'exp7-quick-patch-seed2'): shutil.copytree(ROOT/'results'/name, tmp_path/name)
    recs = {(7, s): json.loads((tmp_path/f'exp7-quick-patch-seed{s}'/'results.json').read_text()) for s in (1, 2)}
    t = table1(recs)
    assert "preset='quick', split='patch'; seeds [1, 2]" in t and '| 7 | ' in t and '0.919 / 0.902 / 0.905' in t, t
    assert check_record(tmp_path/'exp7-quick-patch-seed2') == []
    shutil.copy(tmp_path/'exp7-quick-patch-seed1'/'config.json', tmp_path/'exp7-quick-patch-seed2'/'config.json')
    assert 'exp7-quick-patch-seed2: seed is 2 in results.json but 1 in config.json' in check_record(tmp_path/'exp7-quick-patch-seed2')

# --- segment: the console entry point's messages that need no trained run ---------------------------------------------
def _scan(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), path)
    return path

def test_segment_cli_messages(tmp_path, capsys):
    from advnorm.segment import main
    a, b = _scan(tmp_path/'a'/'t1.nii.gz'), _scan(tmp_path/'b'/'t1.nii.gz')
    bad = tmp_path/'bad.pt'; bad.write_bytes(b'not a checkpoint' * 64)
    cases = [([str(a), '--checkpoint', str(bad), '--out', str(tmp_path/'s.nii.gz')], 'bad.pt is not a readable advnorm checkpoint'),
             ([str(a), str(b), '--checkpoint', str(bad), '--out-dir', str(tmp_path/'segs')], 'would both be written to'),
             ([str(tmp_path/'none.nii'), '--checkpoint', str(bad), '--out', str(tmp_path/'s.nii.gz')], 'none.nii: no such file')]
    for argv, msg in cases:
        with pytest.raises(SystemExit) as e: main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and msg in err and err.startswith('advnorm-segment: error: ') and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path/'s.nii.gz').exists() and not (tmp_path/'segs').exists()

# --- realism: SSIM, ROC AUC and W1 on inputs whose values are known, and the critic's forward pass --------------------
def test_realism_measures_by_hand():
    from advnorm.realism import ssim_map, roc_auc, tissue_w1, tissue_values, RealismCritic
    x = np.random.default_rng(0).random((12, 12, 12))
    assert np.allclose(ssim_map(x, x), 1) and ssim_map(x, 1 - x).mean() < 0
    with pytest.raises(ValueError, match=r'x has shape \(12, 12, 12\), y \(12, 12\)'): ssim_map(x, x[0])
    assert roc_auc([0, 1], [2, 3]) == 1.0 and roc_auc([2, 3], [0, 1]) == 0.0 and roc_auc([1, 1], [1, 1]) == 0.5
    with pytest.raises(ValueError, match='needs scores of both kinds, got 0 real'): roc_auc([], [1])
    lab = np.zeros((12, 12, 12), int); lab[:4], lab[4:8], lab[8:] = 1, 2, 3
    assert tissue_w1(tissue_values(x, lab), tissue_values(x + 0.25, lab)) == pytest.approx([0.25] * 3)
    torch.manual_seed(0)
    assert RealismCritic()(torch.rand(3, 1, 16, 16, 16)).shape == (3,)

# --- flops: the count of one convolution by hand and by torch, and a whole step on the meta device -------------------
def test_conv_flops_and_step_flops():
    from advnorm.flops import conv_flops, step_flops, peak_tflops
    conv, shape = torch.nn.Conv3d(2, 8, 3, padding=1), (1, 2, 8, 8, 8)
    by_hand = 2 * (8 * 8 ** 3) * 2 * 27                              # 2 × outputs × (in channels × 3³) multiply-adds
    with FlopCounterMode(display=False) as fc: conv(torch.rand(shape))
    assert conv_flops(conv, shape) == {'forward': by_hand, 'backward': by_hand} and fc.get_total_flops() == by_hand
    one, two = step_flops('smoke', 7, batch=1)['total'], step_flops('smoke', 7, batch=2)['total']
    assert 0 < one and two == 2 * one                                  # linear in the batch
    with pytest.raises(ValueError, match="adv_loss='wgan-gp'"): step_flops(get_preset('smoke', adv_loss='wgan-gp'))
    assert peak_tflops('NVIDIA H200', 'bf16') == 989.5 and peak_tflops('NVIDIA H200 NVL', 'bf16') is None


def test_engine_layers_by_hand(tmp_path):
    "patches, benchmark, rundata, runtime and runner: one real check each, without training."
    from advnorm.patches import check_split, pad_volume
    from advnorm.benchmark import benchmark_dir, GENERATOR_VERSION
    from advnorm.rundata import benchmark_name
    from advnorm.runtime import make_autocast, run_identity, run_mismatch, check_finite, NonFiniteLoss, new_state
    from advnorm.runner import run_name, check_params
    with pytest.raises(ValueError, match="split='voxel'"): check_split('voxel')
    assert pad_volume(np.ones((20, 33, 40), np.float32), 32).shape == (52, 65, 72)   # 16 zeros on each side
    p, e = get_preset('smoke'), get_experiment(7)
    assert benchmark_dir(**p.benchmark).name.endswith(f'-v{GENERATOR_VERSION}')
    assert benchmark_name(e, p, 'synthetic') == benchmark_dir(**p.benchmark).name and benchmark_name(e, p, tmp_path) is None
    assert make_autocast('auto', torch.device('cpu')) == (make_autocast('off', torch.device('cpu'))[0], False)
    ident = run_identity(e, p, 'synthetic', 'patch', 0, {})
    assert run_mismatch(ident, ident | {'seed': 2}) == ['seed: 0 in the run, 2 asked']
    with pytest.raises(NonFiniteLoss, match='the adv loss became inf at step 3'):
        check_finite({'adv': torch.tensor(float('inf'))}, 3, tmp_path/'checkpoint.pt')
    assert (new_state(get_experiment(5))['warmup'], new_state(e)['warmup']) == (False, True)
    assert run_name(e, 'quick', 'subject', 4, {'lambda_adv': 0.1}) == 'exp7-quick-subject-seed4-lambda_adv=0.1'
    with pytest.raises(ValueError, match='exp=8'): check_params(8, 'quick', 'synthetic', 0, 'patch')
