"Run every notebook in nbs/ the way `nbdev_test` does, one pytest test per notebook (a failing cell fails that test)."
from pathlib import Path
import pytest
from nbdev import test as nbdev_test  # not `import test_nb`: pytest would collect it as a test

pytestmark = pytest.mark.slow   # executes every notebook

NBS = Path(__file__).resolve().parent.parent/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    ok, secs = nbdev_test.test_nb(nb, skip_flags=['slow'], showerr=True)
    assert ok, f'{nb.name} failed (see the cell traceback above)'
