"""What the committed outputs of the notebooks in nbs/ may hold, and how to scrub them.

    python tools/notebook_outputs.py        # check every notebook in nbs/, print each problem, exit 1 if any

The checks, run by tests/test_outputs.py as part of the test suite:

- always: no output names a machine folder (an absolute path, a temporary folder, the user's home or name); no image
  output is over 300 KB; nbs/ holds at most 15 MB; the notebook is as `nbdev_clean` leaves it (outputs kept);
- once `require_outputs = True` in settings.ini (or `ADVNORM_REQUIRE_OUTPUTS=1` in the environment): every notebook
  holds outputs, and a notebook that draws (plt, `plot_*`, `view_*`, `display(Image(...))`) holds an image output.

tools/refresh_notebooks.py executes the notebooks and scrubs their outputs with `scrub_nb` below.
"""
from __future__ import annotations
import base64, configparser, getpass, json, os, re, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
MAX_IMAGE_BYTES = 300 * 1024   # one image output
MAX_NBS_BYTES = 15 * 2**20     # everything under nbs/
IMAGE_MIMES = ('image/png', 'image/jpeg', 'image/gif', 'image/svg+xml')
TEXT_MIMES = ('text/plain', 'text/html', 'text/markdown', 'text/latex', 'application/json')

# an absolute path of two folders or more ("/work/x/runs/..."), not a URL ("https://a/b/c/"), a relative path
# ("runs/exp7/x"), a fraction ("G/S/D") nor a scrubbed temporary folder ("$TMPDIR/a/b/")
ABS_PATH = re.compile(r'(?<![\w.:/~-])(?<!\$TMPDIR)/(?:[A-Za-z0-9_.-]+/){2,}')
# temporary folders: the system's, macOS's, and the names tempfile.mkdtemp makes
TMP_DIR = re.compile(r'(?<![\w.~-])/(?:tmp|var/folders|private/var)/|(?<![\w-])tmp[a-z0-9_]{8}(?![\w-])')
HOME_DIR = re.compile(r'(?<![\w.:/~-])/(?:home|Users)/[\w.-]+|(?<![\w.:/~-])/root/')
GENERIC_USERS = {'root', 'user', 'runner', 'admin', 'jovyan', 'ubuntu', 'vscode', 'codespace', 'nobody', 'ci'}
# a cell draws when it calls pyplot, one of the project's plot_*/view_* functions, or displays an image
DRAWS = re.compile(r'\bplt\.(?!close\b|rcParams\b|style\b)\w+\(|\bplot_\w+\(|\bview_\w+\(|display\(\s*(?:Image|fig)')

def settings_flag(key: str, root: Path = ROOT) -> bool:
    "A yes/no key of settings.ini's [DEFAULT] section (missing: no)."
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(root/'settings.ini', encoding='utf-8')
    return cfg['DEFAULT'].getboolean(key, fallback=False)

def require_outputs(root: Path = ROOT) -> bool:
    "Whether every notebook must hold outputs: `$ADVNORM_REQUIRE_OUTPUTS` (1/0) if set, else settings.ini `require_outputs`."
    env = os.environ.get('ADVNORM_REQUIRE_OUTPUTS')
    if env is not None and env.strip():
        if env.strip().lower() not in ('1', '0', 'true', 'false', 'yes', 'no'):
            raise ValueError(f'ADVNORM_REQUIRE_OUTPUTS={env!r}: expected 1 or 0')
        return env.strip().lower() in ('1', 'true', 'yes')
    return settings_flag('require_outputs', root)

def notebooks(nbs: Path = NBS) -> list[Path]:
    "The notebooks of nbs/ (not those whose name starts with '_' or '.')."
    return sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))

def reading_order(readme: Path = ROOT/'README.md', nbs: Path = NBS) -> list[tuple[Path, str, str]]:
    "(notebook, module, what it is) in the order of the README's 'Reading order' table, then any notebook it lacks."
    text = readme.read_text(encoding='utf-8')
    m = re.search(r'^## Reading order\n(.*?)(?=^## |\Z)', text, flags=re.M | re.S)
    rows = []
    for line in (m.group(1).splitlines() if m else []):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) >= 3 and (nb := nbs/f"{cells[0].strip('`')}.ipynb").exists():
            rows.append((nb, cells[1].strip('`'), cells[2]))
    listed = {r[0] for r in rows}
    return rows + [(p, '', '') for p in notebooks(nbs) if p not in listed]

def _text(v) -> str: return ''.join(v) if isinstance(v, list) else (json.dumps(v) if isinstance(v, dict) else str(v))

def output_texts(nb: dict):
    "(cell number, what, text) for every text an output holds: streams, text reprs, errors."
    for i, c in enumerate(nb.get('cells', [])):
        for o in c.get('outputs', []):
            if 'text' in o: yield i, f"{o.get('name', 'stream')} stream", _text(o['text'])
            for k, v in o.get('data', {}).items():
                if k in TEXT_MIMES or (k.startswith('text/') and k not in IMAGE_MIMES): yield i, k, _text(v)
            if o.get('output_type') == 'error':
                yield i, 'error', '\n'.join([o.get('ename', ''), o.get('evalue', '')] + list(o.get('traceback', [])))

def image_outputs(nb: dict) -> list[tuple[int, str, int]]:
    "(cell number, mime type, bytes) of every image an output holds."
    out = []
    for i, c in enumerate(nb.get('cells', [])):
        for o in c.get('outputs', []):
            for k, v in o.get('data', {}).items():
                if k in IMAGE_MIMES:
                    v = _text(v)
                    n = len(v.encode()) if k == 'image/svg+xml' else len(base64.b64decode(v.strip() + '=' * (-len(v.strip()) % 4)))
                    out.append((i, k, n))
    return out

def n_outputs(nb: dict) -> int: return sum(len(c.get('outputs', [])) for c in nb.get('cells', []))

def draws(nb: dict) -> bool:
    "Whether a code cell of `nb` draws: calls pyplot, a `plot_*` or `view_*` function, or displays an image."
    return any(c['cell_type'] == 'code' and DRAWS.search(_text(c['source'])) for c in nb.get('cells', []))

def _user_names() -> set[str]:
    names = {getpass.getuser(), Path.home().name}
    return {n for n in names if len(n) >= 3 and n.lower() not in GENERIC_USERS}

def path_problems(nb: dict, where: str = '') -> list[str]:
    "Outputs that name a folder of the machine: an absolute path, a temporary folder, a home folder or the user's name."
    probs, users = [], _user_names()
    for i, what, text in output_texts(nb):
        for name, rx in (('absolute path', ABS_PATH), ('temporary folder', TMP_DIR), ('home folder', HOME_DIR)):
            if m := rx.search(text):
                probs.append(f'{where}cell {i} {what}: {name} {text[max(0, m.start() - 20):m.end() + 20]!r}')
        for u in users:
            if re.search(rf'(?<![\w-]){re.escape(u)}(?![\w-])', text): probs.append(f'{where}cell {i} {what}: the user name {u!r}')
    return probs

def image_problems(nb: dict, where: str = '', limit: int = MAX_IMAGE_BYTES) -> list[str]:
    return [f'{where}cell {i}: {mime} of {n / 1024:.0f} KB (limit {limit / 1024:.0f} KB): lower the DPI or the figure size'
            for i, mime, n in image_outputs(nb) if n > limit]

def presence_problems(nb: dict, where: str = '') -> list[str]:
    "A notebook without any output, or one that draws without an image output (checked once outputs are required)."
    if not n_outputs(nb): return [f'{where}no outputs: execute it with `python tools/refresh_notebooks.py`']
    if draws(nb) and not image_outputs(nb): return [f'{where}draws (plt / plot_* / view_* / display) but holds no image output']
    return []

def clean_problems(path: Path) -> list[str]:
    "Whether `nbdev_clean` would change the file (outputs are kept: settings.ini has clear_all = False)."
    from nbdev.clean import clean_nb
    from nbdev.config import get_config
    from execnb.nbio import nb2str
    cfg = get_config(path=path.resolve().parent)
    text = path.read_text(encoding='utf-8')
    nb = json.loads(text)
    clean_nb(nb, cfg.clear_all, cfg.get('allowed_metadata_keys').split(), cfg.get('allowed_cell_metadata_keys').split(), cfg.clean_ids)
    return [] if nb2str(nb) == text else [f'{path.name}: not clean: run nbdev_clean (it keeps outputs) and commit']

def size_problems(nbs: Path = NBS, limit: int = MAX_NBS_BYTES) -> list[str]:
    total = sum(p.stat().st_size for p in nbs.rglob('*') if p.is_file() and '.ipynb_checkpoints' not in p.parts)
    return [] if total <= limit else [f'{nbs.name}/ holds {total / 2**20:.1f} MB (limit {limit / 2**20:.0f} MB)']

def problems(path: Path, require: bool | None = None) -> list[str]:
    "Every problem of one notebook file."
    nb, where = json.loads(path.read_text(encoding='utf-8')), f'{path.name}: '
    found = path_problems(nb, where) + image_problems(nb, where) + clean_problems(path)
    if require_outputs() if require is None else require: found += presence_problems(nb, where)
    return found

# --- scrubbing -------------------------------------------------------------------------------------------------------
def scrub_text(text: str, root: Path = ROOT) -> str:
    "Machine folders out of one output text: the checkout -> relative, temporary folders -> $TMPDIR, home -> ~."
    roots = {str(root), str(root.resolve())}
    for r in sorted(roots, key=len, reverse=True):
        text = re.sub(re.escape(r) + r'/', '', text)
        text = re.sub(re.escape(r) + r'(?![\w.-])', '.', text)
    tmps = {tempfile.gettempdir(), os.path.realpath(tempfile.gettempdir()), '/tmp', '/private/tmp'}
    for t in sorted(tmps, key=len, reverse=True):
        text = re.sub(re.escape(t) + r'/(?:[\w.-]+/)*?tmp[\w]{8}(?![\w-])', '$TMPDIR', text)   # mkdtemp folders
        text = re.sub(re.escape(t) + r'/(?:pytest-of-[\w.-]+/pytest-\d+|[\w.-]+)(?=/|\b)', '$TMPDIR', text)
    home = str(Path.home())
    if home not in ('/', ''): text = re.sub(re.escape(home) + r'(?=/|\b)', '~', text)
    return text

def scrub_nb(nb: dict, root: Path = ROOT) -> dict:
    "Scrub every text output of `nb` in place (images untouched); returns `nb`."
    def fix(v): return [scrub_text(s, root) for s in v] if isinstance(v, list) else scrub_text(v, root) if isinstance(v, str) else v
    for c in nb.get('cells', []):
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = fix(o['text'])
            for k in list(o.get('data', {})):
                if k not in IMAGE_MIMES and k.startswith(('text/', 'application/json')): o['data'][k] = fix(o['data'][k])
            if 'traceback' in o: o['traceback'] = fix(o['traceback'])
            if 'evalue' in o: o['evalue'] = fix(o['evalue'])
    return nb

def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--require', choices=['auto', 'yes', 'no'], default='auto',
                    help="check that every notebook holds outputs: 'auto' reads settings.ini / $ADVNORM_REQUIRE_OUTPUTS")
    a = ap.parse_args(argv)
    req = None if a.require == 'auto' else a.require == 'yes'
    found = [p for nb in notebooks() for p in problems(nb, req)] + size_problems()
    for p in found: print(p)
    print(f'{len(found)} problem(s) in {len(notebooks())} notebooks (outputs required: {require_outputs() if req is None else req})')
    return 1 if found else 0

if __name__ == '__main__': sys.exit(main())
