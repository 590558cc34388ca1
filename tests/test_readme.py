"""The README's results paragraphs and its Performance section are what the committed records give (tools/readme_results.py
and tools/readme_performance.py wrote them, nothing typed)."""
import copy, importlib.util, json, re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT/'benchmarks'/'records'

def _tool():
    "tools/readme_performance.py as a module (it reads JSON only: no torch, fast)."
    spec = importlib.util.spec_from_file_location('readme_performance', ROOT/'tools'/'readme_performance.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod

@pytest.mark.slow   # a subprocess reading every record (~9 s on the loaded 2-core machine)
def test_readme_results_are_the_records():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme_results.py'), '--check'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]

def test_readme_performance_is_the_records():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme_performance.py'), '--check'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]

def test_a_changed_record_changes_the_performance_text(tmp_path):
    "A figure changed in a copy of each record shows in the text, and --check then fails on a copy of the README."
    t = _tool()
    for f in RECORDS.glob('*.json'): shutil.copy(f, tmp_path/f.name)
    before = t.performance_text(tmp_path)
    assert before == t.performance_text(RECORDS)
    cpu, _ = t.newest(tmp_path, 'default'); rec = json.loads(cpu.read_text())
    row = next(x for x in rec['rows'] if x['key'] == 'loader_vs_step')
    row['ours'], row['ratio'] = 123_456.0, 123_456.0 / row['other']
    cpu.write_text(json.dumps(rec))
    gpu, _ = t.newest(tmp_path, 'gpu'); g = json.loads(gpu.read_text())
    g['figures']['step_paper_b64_cuda_bf16_autotuned']['value'] = 999.9
    gpu.write_text(json.dumps(g))
    after = t.performance_text(tmp_path)
    assert after != before and '| 123,456 |' in after and '1,000 patches/s at batch 64' in after, after
    readme = tmp_path/'README.md'; shutil.copy(ROOT/'README.md', readme)
    assert t.main(['--check', '--readme', str(readme), '--records', str(tmp_path)]) == 1
    assert t.main(['--readme', str(readme), '--records', str(tmp_path)]) == 0
    assert t.main(['--check', '--readme', str(readme), '--records', str(tmp_path)]) == 0 and '| 123,456 |' in readme.read_text()

def test_the_newest_cpu_record_is_the_one_written():
    "A later record of the same mode replaces the earlier one in the text; a --quick record never does."
    t = _tool()
    f, rec = t.newest(RECORDS, 'default')
    assert not rec['quick'] and rec['mode'] == 'default' and f'`benchmarks/records/{f.name}`' in t.performance_text(RECORDS)
    for key in ('machine', 'git', 'load_before', 'load_after', 'date', 'rows'): assert rec[key] is not None, key
    assert {'cpu_model', 'cores', 'torch', 'threads', 'omp_wait_policy'} <= set(rec['machine']), rec['machine']
    assert all({'key', 'ours', 'other', 'unit', 'ratio', 'goal', 'facts'} <= set(x) for x in rec['rows'])

def test_gpu_record_points_at_its_log():
    "Each figure of the GPU record stands, with its value, on the line of the .md it points to: nothing invented."
    _, g = _tool().newest(RECORDS, 'gpu')
    md = (ROOT/g['source']).read_text().splitlines()
    for key, x in {**g['machine'], **g['figures']}.items():
        line = md[x['at']['line'] - 1]
        assert x['at']['text'] in line, (key, x['at'], line)
        if isinstance(x['value'], str): assert x['value'] in x['at']['text'], (key, x)
        else: assert float(x['value']) in [float(n.replace(',', '')) for n in re.findall(r'\d[\d,]*(?:\.\d+)?', x['at']['text'])], (key, x)

def test_gpu_figures_derived_agree_with_the_log():
    "What the tool computes from the GPU record (determinism's cost, the paper's budget in minutes) is what the log says."
    t = _tool(); f, g = t.newest(RECORDS, 'gpu')
    md = (ROOT/g['source']).read_text().replace('\n', ' ')
    text = t.gpu_text(f, g)
    lo_hi = re.search(r'determinism costs ([\d.]+-[\d.]+)×', text)[1]
    assert f'costs a factor {lo_hi} on this GPU' in md, lo_hi
    minutes = re.search(r'takes about (\d+) min', text)[1]
    assert f'about {minutes} min at' in md, minutes
    bad = copy.deepcopy(g); bad['figures']['paper_hours']['value'] = 9
    with pytest.raises(ValueError, match='paper'): t.gpu_text(f, bad)
