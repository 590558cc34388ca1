"""The committed outputs of nbs/ name no machine folder, hold small images, stay within 15 MB and are nbdev-clean; once
settings.ini says `require_outputs = True`, every notebook holds outputs and those that draw hold an image.
The checks themselves (tools/notebook_outputs.py) are tested on small notebooks written here."""
import base64, json, shutil, sys, zlib, struct
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import notebook_outputs as O   # noqa: E402

NOTEBOOKS = O.notebooks()
ids = [p.stem for p in NOTEBOOKS]

def _nb(path): return json.loads(path.read_text(encoding='utf-8'))

# --- the notebooks of nbs/ -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=ids)
def test_outputs_name_no_machine_folder(nb):
    assert O.path_problems(_nb(nb), f'{nb.name}: ') == []

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=ids)
def test_image_outputs_are_small(nb):
    assert O.image_problems(_nb(nb), f'{nb.name}: ') == []

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=ids)
def test_notebook_is_nbdev_clean(nb):
    assert O.clean_problems(nb) == []

def test_nbs_folder_within_15_mb():
    assert O.size_problems() == []

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=ids)
def test_notebook_holds_outputs(nb):
    if not O.require_outputs():
        pytest.skip('outputs not required yet: settings.ini require_outputs = False (ADVNORM_REQUIRE_OUTPUTS=1 checks now)')
    assert O.presence_problems(_nb(nb), f'{nb.name}: ') == []

def test_readme_reading_order_lists_every_notebook():
    order = O.reading_order()
    assert [p for p, *_ in order][:2] == [O.NBS/'00_core.ipynb', O.NBS/'01_data.ipynb']
    assert {p for p, *_ in order} == set(NOTEBOOKS) and all(what for _, _, what in order)

# --- the checks, on notebooks written here -----------------------------------------------------------------------------
def _png(width: int, height: int) -> str:
    "A valid grey PNG of the given size, base64 (incompressible noise rows make it big when asked)."
    import os
    raw = b''.join(b'\x00' + os.urandom(width) for _ in range(height))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) \
          + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    return base64.b64encode(png).decode()

def _stream(text): return {'output_type': 'stream', 'name': 'stdout', 'text': [text]}
def _image(png): return {'output_type': 'display_data', 'data': {'image/png': png, 'text/plain': ['<Figure>']}, 'metadata': {}}

def _write(folder: Path, name: str, cells: list, clean: bool = True) -> Path:
    "A notebook of code cells (source, outputs), written as nbdev_clean leaves it (or with an execution count)."
    from execnb.nbio import nb2str
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None if clean else 3, 'id': f'{i:08x}', 'metadata': {},
                     'outputs': outs, 'source': [src]} for i, (src, outs) in enumerate(cells)],
          'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    shutil.copy(ROOT/'settings.ini', folder/'settings.ini')   # nbdev_clean's settings
    (p := folder/name).write_text(nb2str(nb), encoding='utf-8')
    return p

def test_machine_paths_are_found(tmp_path):
    bad = ['results: /work/wt16/runs/exp7/results.json', 'written to /home/alice/advnorm/data/', "Path('/tmp/tmpab12cd3e')",
           'run dir /tmp/pytest-of-root/pytest-3/x', 'see /root/.cache/advnorm']
    for text in bad:
        assert O.path_problems(_nb(_write(tmp_path, 'a.ipynb', [('print(x)', [_stream(text)])]))), text
    good = ['results: runs/exp7-quick-patch-seed0/results.json', 'https://github.com/advnorm/advnorm/blob/main/x',
            'G/S/D widths 8/16/32/64', 'loss 0.5 / 0.25', 'data/synthetic/seed0-infant3-adult3-4mm-v1', '$TMPDIR/ck.pt', '$TMPDIR/cli/many/subject-1-T1_seg.nii']
    for text in good:
        assert O.path_problems(_nb(_write(tmp_path, 'a.ipynb', [('print(x)', [_stream(text)])]))) == [], text

def test_paths_in_reprs_and_tracebacks_are_found(tmp_path):
    repr_out = {'output_type': 'execute_result', 'execution_count': None, 'metadata': {},
                'data': {'text/plain': ["PosixPath('/srv/data/advnorm/x.nii')"]}}
    err = {'output_type': 'error', 'ename': 'ValueError', 'evalue': 'bad', 'traceback': ['File /opt/venv/lib/x.py']}
    assert O.path_problems(_nb(_write(tmp_path, 'a.ipynb', [('x', [repr_out]), ('y', [err])]))) != []

def test_user_name_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(O, '_user_names', lambda: {'alice'})
    assert O.path_problems(_nb(_write(tmp_path, 'a.ipynb', [('x', [_stream('trained by alice on gpu0')])])))
    assert not O.path_problems(_nb(_write(tmp_path, 'a.ipynb', [('x', [_stream('trained by malice-free code')])])))

def test_big_images_are_found(tmp_path):
    small, big = _png(64, 64), _png(700, 500)   # 4 KB and 342 KB of noise
    assert O.image_problems(_nb(_write(tmp_path, 'a.ipynb', [('plt.plot(x)', [_image(small)])]))) == []
    probs = O.image_problems(_nb(_write(tmp_path, 'a.ipynb', [('plt.plot(x)', [_image(big)])])))
    assert len(probs) == 1 and 'KB' in probs[0]

def test_unclean_notebook_is_found(tmp_path):
    assert O.clean_problems(_write(tmp_path, 'a.ipynb', [('1 + 1', [])])) == []
    assert O.clean_problems(_write(tmp_path, 'a.ipynb', [('1 + 1', [])], clean=False))

def test_presence_of_outputs_and_images(tmp_path):
    png = _png(8, 8)
    cases = [([('x = 1', [])], 1),                                                     # no output at all
             ([('fig = plt.subplots()', [_stream('done')])], 1),                       # draws, no image
             ([('plot_examples(vols)', [_image(png)])], 0),
             ([('display(Image(f))', [_image(png)])], 0),
             ([('print(1)', [_stream('1')]), ("plt.close('all')", [])], 0)]            # closing is not drawing
    for cells, n in cases:
        nb = _write(tmp_path, 'a.ipynb', cells)
        assert len(O.presence_problems(_nb(nb))) == n, cells
        assert len(O.problems(nb, require=True)) == n and O.problems(nb, require=False) == [], cells

def test_require_outputs_switch(tmp_path, monkeypatch):
    (tmp_path/'settings.ini').write_text('[DEFAULT]\nrequire_outputs = True\n')
    monkeypatch.delenv('ADVNORM_REQUIRE_OUTPUTS', raising=False)
    assert O.require_outputs(tmp_path) and not O.require_outputs(tmp_path/'nowhere')
    monkeypatch.setenv('ADVNORM_REQUIRE_OUTPUTS', '0'); assert not O.require_outputs(tmp_path)
    monkeypatch.setenv('ADVNORM_REQUIRE_OUTPUTS', '1'); assert O.require_outputs(tmp_path/'nowhere')
    monkeypatch.setenv('ADVNORM_REQUIRE_OUTPUTS', 'maybe')
    with pytest.raises(ValueError, match='ADVNORM_REQUIRE_OUTPUTS'): O.require_outputs()

def test_nbs_size_limit(tmp_path):
    (tmp_path/'a.ipynb').write_bytes(b'x' * 2000)
    assert O.size_problems(tmp_path, limit=4000) == [] and O.size_problems(tmp_path, limit=1000)

def test_scrub_makes_paths_relative(tmp_path):
    import tempfile
    root = Path('/work/checkout')
    tmp = tempfile.mkdtemp(); Path(tmp).rmdir()
    text = (f'results: /work/checkout/runs/exp7/results.json\nroot /work/checkout\nck {tmp}/ck.pt\n'
            f'{Path.home()}/.cache/advnorm/data\nurl https://example.org/a/b/c/')
    out = O.scrub_text(text, root)
    assert out == 'results: runs/exp7/results.json\nroot .\nck $TMPDIR/ck.pt\n~/.cache/advnorm/data\nurl https://example.org/a/b/c/'
    nb = {'cells': [{'cell_type': 'code', 'source': [], 'outputs': [_stream(text), _image(_png(4, 4))]}]}
    scrubbed = O.scrub_nb(nb, root)
    assert O.path_problems(scrubbed) == [] and scrubbed['cells'][0]['outputs'][1]['data']['image/png']
