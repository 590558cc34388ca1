"""The benchmark scripts run end to end in their quick CPU modes (smoke tests: their figures are not checked, only their
tables and files): benchmarks/run.py --quick, run.py --step-throughput --quick, and benchmarks/gpu_speed.sh
(run.py --levers --profile, the benchmark, one epoch) at smoke sizes on the CPU."""
import json, os, re, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # the benchmarks time training steps and train an epoch, in subprocesses

ROOT = Path(__file__).resolve().parent.parent

def test_benchmark_quick_prints_the_table(tmp_path):
    rec = tmp_path/'record.json'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'run.py'), '--quick', '--device', 'cpu', '--json', str(rec)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '2'})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [l for l in r.stdout.splitlines() if l.startswith('| ') and not l.startswith('| section')]
    sections = {l.split(' | ')[0][2:] for l in rows}
    assert {'memory', 'patches', 'inference', 'training step'} <= {s.split(' (')[0] for s in sections} | {'data'}, sections
    assert any(s.startswith('data') for s in sections), sections
    ratios = [float(m) for m in re.findall(r'\| ([\d,.]+)x \|', r.stdout.replace(',', ''))]
    assert len(ratios) >= 5 and all(x > 0 for x in ratios), r.stdout
    assert 'same set on our grid: True' in r.stdout and 'labels agree on 100.0000% of voxels' in r.stdout, r.stdout
    steps = [l for l in rows if l.startswith('| training step')]
    assert len(steps) == 2 and all(float(re.search(r'; ([\d.]+) TFLOP/s\)', l)[1]) > 0 for l in steps), steps
    js = json.loads(rec.read_text())   # the record: the same rows as numbers, the machine, the load, the commit
    assert js['mode'] == 'default' and js['quick'] and js['complete'] and js['git']['commit'], js
    assert js['sections_done'] == ['data', 'patches', 'inference', 'training step'], js['sections_done']
    assert {'cpu_model', 'cores', 'torch', 'threads', 'omp_num_threads', 'omp_wait_policy'} <= set(js['machine']), js['machine']
    assert len(js['load_before']) == len(js['load_after']) == 3 and js['date'] and js['started'] <= js['finished']
    assert [x['text']['ours'] for x in js['rows']] == [l.split(' | ')[2] for l in rows]
    keys = {x['key']: x for x in js['rows']}
    assert {'loader_vs_step', 'extract_vs_torchio', 'inference_seg_only', 'inference_seg_and_g', 'rss_total'} <= set(keys), list(keys)
    assert all(isinstance(x['ours'], (int, float)) and x['ours'] > 0 and x['unit'] for x in js['rows']), js['rows']
    x = keys['loader_vs_step']; assert abs(x['ratio'] - x['ours'] / x['other']) < 1e-9 and x['unit'] == 'patches/s'
    assert keys['inference_seg_and_g']['facts']['labels_agree'] == 1.0

def test_gpu_speed_script_quick_on_cpu(tmp_path):
    "gpu_speed.sh with QUICK=1 DEVICE=cpu: every lever has its row (timed, 'needs CUDA' or skipped), a profile, one epoch."
    sys.path.insert(0, str(ROOT/'benchmarks'))
    from run import LEVERS, COMBINED
    r = subprocess.run(['bash', str(ROOT/'benchmarks'/'gpu_speed.sh'), str(tmp_path)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1', 'QUICK': '1', 'DEVICE': 'cpu'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert {p.name for p in tmp_path.iterdir()} == {'gpu_speed.log', 'levers.md', 'levers.json', 'data.json', 'epoch.json', 'summary.json'}
    table = (tmp_path/'levers.md').read_text()
    assert '| setting | patches/s | vs baseline | TFLOP/s | % of peak | peak GPU memory | deterministic |' in table, table
    lev = json.loads((tmp_path/'levers.json').read_text())
    rows = {r['setting'].split(':')[0] if r['setting'].startswith(COMBINED) else r['setting']: r for r in lev['rows']}
    assert set(rows) == {name for name, *_ in LEVERS} | {COMBINED}, list(rows)
    for name, settings, needs_cuda in LEVERS:
        row = rows[name]
        if needs_cuda: assert row['note'] == 'needs CUDA', row
        elif settings.get('compile'): assert row['note'] == 'skipped (--no-compile)', row
        else: assert row['patches_per_s'] > 0 and row['tflops'] > 0 and row['percent_of_peak'] is None, row
    assert lev['flops_per_step'] > 0 and lev['profile']['kernels'] and len(lev['profile']['kernels']) <= 15, lev.get('profile')
    assert 'torch.profiler' in table and '| kernel | calls per step | ms per step | % of the total |' in table
    ep = json.loads((tmp_path/'epoch.json').read_text())
    assert ep['completed'] and ep['steps_seen'] == ep['steps_per_epoch'] and ep['warmup_patches_per_s'] > 0, ep
    assert ep['extrapolation']['joint_patches_per_s'] > 0, ep['extrapolation']
    summary = json.loads((tmp_path/'summary.json').read_text())
    assert set(summary) == {'levers', 'data', 'epoch'} and 'done in' in (tmp_path/'gpu_speed.log').read_text()

def test_step_throughput_quick_prints_both_thread_counts(tmp_path):
    "--step-throughput --quick --steps 1: one row per (widths, threads), positive rates, the four ratios, the same in the JSON."
    out = tmp_path/'step.json'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'run.py'), '--step-throughput', '--quick', '--steps', '1',
                        '--json', str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE'})   # 2 spinning threads on a shared CPU: minutes
    assert r.returncode == 0, r.stderr[-3000:]
    rows = re.findall(r'^\| \(([\d, ]+)\) \| (\d+) \| (\d) \| ([\d,.]+) \| ([\d.]+) \| (\d+) \|$', r.stdout, re.M)
    got = {(w, int(t)): (float(ps.replace(',', '')), float(s), int(n)) for w, _, t, ps, s, n in rows}
    assert set(got) == {(w, t) for w in ('8, 16, 32', '16, 32, 64') for t in (1, 2)}, r.stdout
    assert all(ps > 0 and s > 0 and n == 1 for ps, s, n in got.values()), got
    ratios = dict(re.findall(r'^  (.+) = ([\d.]+)x$', r.stdout, re.M))
    assert set(ratios) == {'(16, 32, 64) / (8, 16, 32), 1 thread', '(16, 32, 64) / (8, 16, 32), 2 threads',
                           '2 threads / 1 thread, (8, 16, 32)', '2 threads / 1 thread, (16, 32, 64)'}, r.stdout
    assert 'timings of this machine under its current load' in r.stdout and 'batch 4, 16³ patches' in r.stdout
    js = json.loads(out.read_text())
    assert js['patch'] == 16 and js['batch'] == 4 and len(js['rows']) == 4 and js['machine'], js
    rate = {(tuple(x['g_s_widths']), x['threads']): x['patches_per_s'] for x in js['rows']}
    assert all(abs(rate[tuple(map(int, w.split(', '))), t] - ps) <= 0.006 for (w, t), (ps, _, _) in got.items()), (rate, got)
    want = {'(16, 32, 64) / (8, 16, 32), 1 thread': rate[(16, 32, 64), 1] / rate[(8, 16, 32), 1],   # the ratios are of the rates
            '2 threads / 1 thread, (16, 32, 64)': rate[(16, 32, 64), 2] / rate[(16, 32, 64), 1]}
    assert all(abs(float(ratios[k]) - v) <= 0.006 for k, v in want.items()), (ratios, want)
    assert {x['what']: round(x['ratio'], 2) for x in js['ratios']} == {k: float(v) for k, v in ratios.items()}, js['ratios']

def test_step_throughput_flags():
    "--steps and --budget outside their modes, and --step-throughput with another mode, are refused."
    sys.path.insert(0, str(ROOT/'benchmarks'))
    from run import main
    for argv in (['--steps', '2'], ['--step-throughput', '--levers'], ['--step-throughput', '--steps', '0'],
                 ['--budget', '5'], ['--step-throughput', '--device', 'cuda']):
        with pytest.raises(SystemExit): main(argv)
