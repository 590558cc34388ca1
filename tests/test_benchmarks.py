"The benchmark script runs end to end in its --quick mode (a smoke test: its figures are not checked, only its table)."
import os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_benchmark_quick_prints_the_table():
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'run.py'), '--quick', '--device', 'cpu'], capture_output=True,
                       text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '2'})
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
