"The README's results paragraphs are what the committed records give (tools/readme_results.py wrote them, nothing typed)."
import subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow   # a subprocess reading every record (~9 s on the loaded 2-core machine)

ROOT = Path(__file__).resolve().parent.parent

def test_readme_results_are_the_records():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme_results.py'), '--check'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
