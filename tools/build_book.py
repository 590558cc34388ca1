"""Build the notebooks of nbs/ into a static HTML book that works offline: `_docs/index.html` and one page a notebook.

    python tools/build_book.py              # writes _docs/ (gitignored); open _docs/index.html in a browser
    python tools/build_book.py --out DIR

The table of contents is the README's reading order. Pages are nbconvert's JupyterLab template with the committed
outputs as they are (nothing is executed), cells flagged `#| hide` and raw front matter left out, `#|` directives
dropped from the code shown, and markdown images embedded. Equations are typeset by MathJax 2.7, copied into the site
from the `jupyter-server-mathjax` package (a dev requirement), so no page loads anything from the network: no CDN
script, no web font. nbdev's own `nbdev_docs` needs Quarto, whose registry package (`quarto-cli`) downloads its binary
at build time and cannot be installed here; this builder is the offline replacement.
tests/test_book.py builds the book, loads every page in headless Chromium and counts the figures that rendered.
"""
from __future__ import annotations
import argparse, copy, html, json, re, shutil, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_outputs import ROOT, NBS, reading_order, image_outputs

MATHJAX_URL = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'
MATHJAX_FONTS = "MathJax.Hub.Config({'HTML-CSS': {availableFonts: [], webFont: 'STIX-Web', imageFont: null}});"
MATH = re.compile(r'\$\$.+?\$\$|(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$', re.S)

# nbconvert's lab template without what it would fetch from a CDN (require.js, mermaid, the widget manager), with
# MathJax's local fonts, a navigation bar, and JupyterLab's style sheet in one file the pages share (lab.css) rather
# than inlined into every page
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">""" + MATHJAX_FONTS + r"""</script>
{{ super() }}
{%- endblock html_head_js_mathjax -%}
{% block notebook_css %}
<link rel="stylesheet" href="lab.css">
{% endblock notebook_css %}
{% block extra_css %}
<style type="text/css">
nav.book { display: flex; justify-content: space-between; gap: 1em; max-width: 1100px; margin: 0 auto;
           padding: 0.6em 1em; font-family: var(--jp-ui-font-family); font-size: 14px; border-bottom: 1px solid #ddd; }
nav.book a { text-decoration: none; }
main { max-width: 1100px; margin: 0 auto; }
</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
{{ resources.book_nav }}
{%- endblock body_header -%}
"""

def has_math(nb: dict) -> bool:
    "Whether a markdown cell of `nb` holds $...$ or $$...$$ outside code."
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        text = re.sub(r'```.*?```|`[^`\n]*`', '', ''.join(c['source']), flags=re.S)
        if MATH.search(text): return True
    return False

def markdown_images(nb: dict) -> int:
    "Images a markdown cell of `nb` shows: ![...](...) and <img ...>."
    return sum(len(re.findall(r'!\[[^\]]*\]\([^)]+\)|<img\s', ''.join(c['source'])))
               for c in nb['cells'] if c['cell_type'] == 'markdown')

def for_book(nb: dict) -> dict:
    "A copy of `nb` as the book shows it: no `#| hide` cells or raw front matter, no `#|` directive lines, links to .html."
    nb = copy.deepcopy(nb); cells = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw': continue
        if c['cell_type'] == 'code':
            if re.search(r'^#\|\s*hide\s*$', src, flags=re.M): continue
            src = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#|')).strip('\n')
            if not src and not c.get('outputs'): continue
        else: src = re.sub(r'\]\(([\w.-]+)\.ipynb(#[^)]*)?\)', r'](\1.html\2)', src)
        c['source'] = src; cells.append(c)
    nb['cells'] = cells
    return nb

def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    return HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'book.html.j2': TEMPLATE})],
                        template_file='book.html.j2', mathjax_url=MATHJAX_URL, embed_images=True, exclude_anchor_links=False)

# what the lab template adds to JupyterLab's style sheet inline, for lab.css
LAB_EXTRA_CSS = """
* { -webkit-print-color-adjust: exact; }
a.anchor-link { display: none; }
.jp-InputArea, .jp-InputArea-editor { overflow: hidden; }
.cm-editor.cm-s-jupyter .highlight pre { padding: var(--jp-code-padding) 4px; margin: 0; font-family: inherit;
  font-size: inherit; line-height: inherit; color: inherit; }
.jp-OutputArea-output pre { line-height: inherit; font-family: inherit; }
.jp-RenderedText pre { color: var(--jp-content-font-color1); font-size: var(--jp-code-font-size); }
.jp-Collapser { display: none; }
@page { margin: 0.5in; }
@media print { .jp-Cell-inputWrapper, .jp-Cell-outputWrapper { display: block; } }
"""

def lab_css(exporter) -> str:
    "JupyterLab's light theme as nbconvert's lab template would inline it, plus the template's own rules."
    for d in exporter.template_paths:
        if (Path(d)/'static'/'index.css').exists():
            return ''.join((Path(d)/'static'/f).read_text(encoding='utf-8') + '\n' for f in ('index.css', 'theme-light.css')) + LAB_EXTRA_CSS
    raise FileNotFoundError(f"nbconvert's lab template style sheet (static/index.css) not found in {exporter.template_paths}")

def _nav(pages: list[tuple[str, str]], i: int | None) -> str:
    "Links to the previous page, the contents and the next page."
    a = lambda href, text: f'<a href="{href}">{html.escape(text)}</a>'
    prev = a(pages[i - 1][0], '← ' + pages[i - 1][1]) if i else '<span></span>'
    nxt = a(pages[i + 1][0], pages[i + 1][1] + ' →') if i is not None and i + 1 < len(pages) else '<span></span>'
    return f'<nav class="book">{prev}{a("index.html", "Contents")}{nxt}</nav>' if i is not None else ''

def _index_nb(order) -> dict:
    "The contents page as a one-cell notebook: the README's opening paragraph and its reading order, linked."
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    intro = readme.split('\n## ')[0].strip()
    rows = '\n'.join(f'| [{p.stem}]({p.stem}.html) | {f"`{m}`" if m else "—"} | {what} |' for p, m, what in order)
    src = (f'{intro}\n\n## Reading order\n\n| notebook | module | what it is |\n|---|---|---|\n{rows}\n\n'
           'Built from the notebooks in `nbs/` with their committed outputs by `python tools/build_book.py`.')
    return {'cells': [{'cell_type': 'markdown', 'id': 'contents', 'metadata': {}, 'source': src}],
            'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}

def mathjax_dir() -> Path:
    "MathJax 2.7's files, shipped by the `jupyter-server-mathjax` package."
    try: import jupyter_server_mathjax
    except ImportError: raise SystemExit('tools/build_book.py: MathJax comes from the jupyter-server-mathjax package: '
                                         'pip install -e ".[dev]"') from None
    return Path(jupyter_server_mathjax.__file__).parent/'static'

def build(out: Path = ROOT/'_docs', quiet: bool = False) -> list[dict]:
    "Write the book into `out`; returns one dict a page: file, notebook, title, images expected, has_math."
    import nbformat
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    src = mathjax_dir()
    if not (out/'mathjax'/'MathJax.js').exists():
        shutil.copytree(src, out/'mathjax', dirs_exist_ok=True, ignore=shutil.ignore_patterns('*.otf', '*.eot', 'SVG'))
    order = reading_order()
    pages = [('index.html', 'Contents')] + [(f'{p.stem}.html', p.stem) for p, *_ in order]
    ex, manifest = _exporter(), []
    (out/'lab.css').write_text(lab_css(ex), encoding='utf-8')
    for i, (page, nb) in enumerate([(pages[0], _index_nb(order))] + list(zip(pages[1:], [p for p, *_ in order]))):
        path = nb if isinstance(nb, Path) else None
        raw = json.loads(path.read_text(encoding='utf-8')) if path else nb
        shown = for_book(raw)
        resources = {'metadata': {'name': page[1], 'path': str(path.parent if path else NBS)}, 'book_nav': _nav(pages, i)}
        body, _ = ex.from_notebook_node(nbformat.reads(json.dumps(shown), as_version=4), resources=resources)  # reads joins multi-line outputs
        (out/page[0]).write_text(body, encoding='utf-8')
        manifest.append({'file': page[0], 'notebook': path.name if path else None, 'title': page[1],
                         'images': len(image_outputs(shown)) + markdown_images(shown), 'has_math': has_math(shown)})
        if not quiet: print(f'{out.name}/{page[0]}: {manifest[-1]["images"]} image(s), math: {manifest[-1]["has_math"]}')
    (out/'book.json').write_text(json.dumps(manifest, indent=1))
    return manifest

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='the folder to write (default: _docs/ in the checkout)')
    a = ap.parse_args(argv)
    pages = build(Path(a.out))
    print(f'{len(pages)} pages in {a.out}: open {Path(a.out)/"index.html"}')

if __name__ == '__main__': main()
