"""The package's shape (issue: one clear engine layer): modules import only below them, never inside a function to dodge
a cycle, never another module's private name; no function longer than a page."""
import ast, re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/'advnorm'
MAX_LINES = 60

def _modules():
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PKG.glob('*.py')) if not p.name.startswith('_')}

def _package_imports(tree):
    "(module imported, names, top level?) for every import of a package module."
    top = {id(n) for n in tree.body}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.level or (n.module or '').startswith('advnorm.')):
            yield (n.module or '').removeprefix('advnorm.'), [a.name for a in n.names], id(n) in top, n.lineno

def import_graph() -> dict:
    return {m: sorted({d for d, *_ in _package_imports(t)}) for m, t in _modules().items()}

def test_no_import_cycle():
    g, order, state = import_graph(), [], {}
    def visit(m, path):
        if state.get(m) == 'done': return
        assert state.get(m) != 'open', f'import cycle: {" -> ".join(path + [m])}'
        state[m] = 'open'
        for d in g.get(m, []): visit(d, path + [m])
        state[m] = 'done'; order.append(m)
    for m in g: visit(m, [])
    assert {'core', 'data', 'train', 'runtime', 'rundata', 'evaluate', 'runner', 'realism'} <= set(order)
    # the layers of the method: evaluation stands on training, orchestration on evaluation, never the reverse
    assert order.index('train') < order.index('evaluate') < order.index('realism') < order.index('runner') < order.index('tables')
    assert order.index('rundata') < order.index('runtime') < order.index('train')

def notebook_order() -> dict:
    "{module: the number of the notebook that exports it}, from each notebook's `#| default_exp`."
    out = {}
    for nb in sorted((PKG.parent/'nbs').glob('[0-9][0-9]_*.ipynb')):
        m = re.search(r'#\| default_exp (\w+)', nb.read_text())
        if m: out[m.group(1)] = int(nb.name[:2])
    return out

def test_notebooks_are_numbered_in_layer_order():
    "Each module imports only modules whose notebooks come before its own: the reading order is the import order."
    order, g = notebook_order(), import_graph()
    assert set(g) <= set(order), set(g) - set(order)
    bad = [f'{m} ({order[m]:02d}) imports {d} ({order[d]:02d})' for m, deps in g.items() for d in deps if order[d] >= order[m]]
    assert not bad, bad
    assert len(set(order.values())) == len(order), 'two notebooks share a number'

def test_no_import_inside_a_function_and_no_private_name_across_modules():
    bad = []
    for m, t in _modules().items():
        for dep, names, top, line in _package_imports(t):
            if not top: bad.append(f'{m}.py:{line}: imports advnorm.{dep} inside a function')
            bad += [f'{m}.py:{line}: imports the private {dep}.{n}' for n in names if n.startswith('_')]
    assert not bad, '\n'.join(bad)

def test_no_function_longer_than_a_page():
    long = [f'{m}.{n.name}: {n.end_lineno - n.lineno + 1} lines' for m, t in _modules().items()
            for n in ast.walk(t) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert not long, long

def test_the_checks_catch_what_they_look_for(tmp_path):
    "The checks above fail on code that breaks them (a cycle, an inner import, a private name)."
    t = ast.parse('from advnorm.a import _x\ndef f():\n    from advnorm.b import y\n')
    got = list(_package_imports(t))
    assert [(d, top) for d, _, top, _ in got] == [('a', True), ('b', False)] and got[0][1] == ['_x']

def undocumented_parameters() -> list[str]:
    "Public functions (in a module's `__all__`) with a parameter that has neither a comment on its line nor a `name` in the docstring."
    out = []
    for p in sorted(PKG.glob('*.py')):
        if p.name.startswith('_'): continue
        text = p.read_text(); lines = text.splitlines(); t = ast.parse(text)
        names = next((ast.literal_eval(n.value) for n in t.body if isinstance(n, ast.Assign)
                      and any(getattr(x, 'id', '') == '__all__' for x in n.targets)), [])
        for n in t.body:
            if not isinstance(n, ast.FunctionDef) or n.name not in names: continue
            doc = ast.get_docstring(n) or ''
            if not doc: out.append(f'{p.stem}.{n.name}: no docstring'); continue
            for a in n.args.args + n.args.kwonlyargs + [x for x in (n.args.vararg, n.args.kwarg) if x]:
                if '#' not in lines[a.lineno - 1][a.col_offset:] and f'`{a.arg}`' not in doc:
                    out.append(f'{p.stem}.{n.name}({a.arg})')
    return out

def test_public_functions_say_what_each_argument_is():
    "nbdev's docments style: each parameter of a public function carries a comment (or is named in the docstring)."
    missing = undocumented_parameters()
    assert not missing, f'{len(missing)} undocumented: ' + ', '.join(missing)
