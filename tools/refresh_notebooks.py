"""Execute the notebooks of nbs/ in place and keep their outputs, scrubbed of machine folders and nbdev-clean.

    python tools/refresh_notebooks.py                          # every notebook, in the README's reading order
    python tools/refresh_notebooks.py 12_evaluate run_experiment  # some of them (names with or without .ipynb)

Each notebook runs top to bottom in a fresh `python3` kernel from nbs/ (as `nbdev_test` runs them, cells flagged
`#| eval: false` left out, but `#| slow` cells and notebooks marked `skip_exec` run too), with its own
seeds, `PYTHONHASHSEED=0`, text progress bars (`ADVNORM_PROGRESS=text`: their final state is what is kept) and
inline figures at 72 dpi. `run_experiment.ipynb` runs with its defaults (exp 7, `quick`: the longest, about 10 minutes
on a 2-core CPU); `table1.ipynb` and `beyond.ipynb` run with `run_missing = False`, so they show the recorded runs
(`results/`) and train nothing. A notebook that fails is left as it was and the command exits 1. Then the outputs are scrubbed
(the checkout's folder -> relative paths, temporary folders -> $TMPDIR, the home folder -> ~), `nbdev_clean` runs on the
notebook, and tools/notebook_outputs.py's checks run with outputs required; their problems are printed.
A re-execution changes the outputs only where timings are printed.
"""
from __future__ import annotations
import argparse, json, os, re, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_outputs import ROOT, NBS, reading_order, scrub_nb, problems, size_problems

INLINE_DPI = 72
NO_EVAL = re.compile(r'^\s*#\|\s*eval\s*:\s*false\s*$', re.M | re.I)   # nbdev's flag: a cell never run (e.g. `main()`)
SKIP_TAG = 'skip-execution'
RUN_MISSING = re.compile(r'^run_missing\s*=\s*True\b', re.M)

def execute(path: Path, timeout: int | None = None) -> dict:
    "Run the notebook at `path` in a fresh kernel from its folder; returns the executed notebook (not yet written)."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    skipped = [c for c in nb.cells if c.cell_type == 'code' and NO_EVAL.search(c.source)]
    # the sweep notebooks (table1, beyond) show the recorded runs: a refresh collects them and trains nothing
    params = [c for c in nb.cells if c.cell_type == 'code' and 'parameters' in c.metadata.get('tags', ())
              and RUN_MISSING.search(c.source)]
    kept = [c.source for c in params]
    for c in params: c.source = RUN_MISSING.sub('run_missing = False', c.source)
    for c in skipped: c.metadata.setdefault('tags', []).append(SKIP_TAG)   # nbclient skips cells with this tag
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}},
                            coalesce_streams=True,      # a text bar's \r redraws collapse to its final state
                            store_widget_state=False,   # no widget state in the notebook's metadata
                            record_timing=False, allow_errors=False,
                            extra_arguments=[f"--InlineBackend.rc={{'figure.dpi': {INLINE_DPI}}}"])
    try: client.execute()
    finally:
        for c, src in zip(params, kept): c.source = src   # the notebook keeps its own default
        for c in skipped:
            c.metadata.tags.remove(SKIP_TAG)
            if not c.metadata.tags: del c.metadata['tags']
    return json.loads(nbformat.writes(nb))

def refresh(path: Path, timeout: int | None = None) -> list[str]:
    "Execute, scrub, write and nbdev-clean one notebook; returns the checks' problems."
    from nbdev.clean import nbdev_clean
    nb = scrub_nb(execute(path, timeout))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    nbdev_clean(fname=str(path))
    return problems(path, require=True)

def _resolve(names: list[str]) -> list[Path]:
    order = [p for p, *_ in reading_order()]
    if not names: return order
    out = []
    for n in names:
        p = NBS/(Path(n).stem + '.ipynb')
        if not p.exists(): raise SystemExit(f'{n}: no such notebook in nbs/ (expected one of {", ".join(q.stem for q in order)})')
        out.append(p)
    return out

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('names', nargs='*', help='notebooks to refresh (default: all of nbs/, in the README reading order)')
    ap.add_argument('--timeout', type=int, default=None, help='seconds a cell may run (default: no limit)')
    a = ap.parse_args(argv)
    os.chdir(ROOT)                                                    # nbdev_clean reads settings.ini from here
    os.environ.update(PYTHONHASHSEED='0', ADVNORM_PROGRESS='text')   # inherited by the kernels
    os.environ.pop('JPY_SESSION_NAME', None)                          # not a JupyterLab kernel, even from its terminal
    failed, found = [], []
    for path in _resolve(a.names):
        t = time.time()
        print(f'{path.relative_to(ROOT)} ...', end=' ', flush=True)
        try: found += refresh(path, a.timeout)
        except Exception as e:   # nbclient's CellExecutionError names the cell and holds its traceback
            failed.append(path.name); print(f'FAILED after {time.time() - t:.0f} s, left unchanged:\n{e}', flush=True); continue
        print(f'{time.time() - t:.0f} s', flush=True)
    found += size_problems()
    for p in found: print('problem:', p)
    print(f'{len(failed)} failed ({", ".join(failed) or "none"}), {len(found)} problem(s) in the outputs')
    return 1 if failed or found else 0

if __name__ == '__main__': sys.exit(main())
