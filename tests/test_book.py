"""The rendered book (tools/build_book.py): it builds offline, and in a real browser — Debian's Chromium, headless,
driven over the DevTools protocol — every page loads from localhost, every figure it should show rendered
(naturalWidth > 0: one per image output and markdown image of the notebook), and MathJax typeset the equations.
One screenshot is kept as a test artefact in tests/artifacts/ (gitignored)."""
import base64, functools, json, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import build_book   # noqa: E402

pytestmark = pytest.mark.slow   # builds the book from every notebook and drives a browser

ARTIFACTS = ROOT/'tests'/'artifacts'
SCREENSHOT_PAGE = '08_losses.html'   # equations and code: the page a reader of the paper opens first
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--hide-scrollbars', '--remote-debugging-port=0', '--window-size=1280,900']

@pytest.fixture(scope='module')
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp('book')/'_docs'
    return out, build_book.build(out, quiet=True)

def test_book_builds_offline(book):
    out, pages = book
    order = build_book.reading_order()
    assert [p['file'] for p in pages] == ['index.html'] + [f'{p.stem}.html' for p, *_ in order]
    index = (out/'index.html').read_text(encoding='utf-8')
    assert all(f'href="{p.stem}.html"' in index for p, *_ in order)          # the reading order is the contents
    assert (out/'mathjax'/'MathJax.js').exists() and (out/'lab.css').stat().st_size > 100_000   # MathJax, the style sheet
    for p in pages:
        page = (out/p['file']).read_text(encoding='utf-8')
        external = re.findall(r'<(?:script|img|iframe)[^>]+src="(https?:[^"]+)"|<link[^>]+href="(https?:[^"]+)"', page)
        assert external == [], (p['file'], external)                        # nothing from the network
        assert page.count('<img ') == p['images'], p['file']                 # every image output made it to the page
        assert '#| export' not in page and 'skip_exec' not in page
    assert any(p['has_math'] for p in pages)

# --- a real browser ----------------------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for c in (os.environ.get('ADVNORM_CHROMIUM'), '/usr/bin/chromium', 'chromium', 'chromium-browser', 'google-chrome'):
        if c and (path := shutil.which(c)): return path
    return None

class DevTools:
    "Just enough of the Chrome DevTools protocol: one page, commands answered in order, events ignored."
    def __init__(self, ws_url: str):
        import websocket
        self.ws, self.n = websocket.create_connection(ws_url, timeout=60, suppress_origin=True), 0

    def __call__(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.n:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg['result']

    def eval(self, js: str):
        r = self('Runtime.evaluate', expression=js, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{js[:60]}...: {r["exceptionDetails"]}')
        return r['result'].get('value')

# Ready once the page has loaded and MathJax (where the page has it) has started up — its first typesetting is part
# of the start-up — and then run everything queued after it (the template queues one more typesetting).
READY_JS = """(() => {
  if (location.href !== URL || document.readyState !== 'complete') return false;
  const mj = window.MathJax;
  if (!(mj && mj.Hub)) return true;
  if (!mj.isReady) return false;
  if (!window.__bookQueued) { window.__bookQueued = true; mj.Hub.Queue(() => { window.__mathDone = true; }); }
  return !!window.__mathDone;
})()"""
COUNT_JS = """JSON.stringify((() => {
  const imgs = [...document.images], ok = i => i.complete && i.naturalWidth > 0;
  return {images: imgs.length, rendered: imgs.filter(ok).length,
          broken: imgs.filter(i => !ok(i)).map(i => (i.alt || i.src).slice(0, 60)),
          math_sources: document.querySelectorAll('script[type^="math/tex"]').length,
          math_typeset: document.querySelectorAll('span.MathJax, span.MathJax_SVG, span.MathJax_CHTML, mjx-container, .katex').length,
          math_errors: document.querySelectorAll('.MathJax_Error, merror').length + (document.body.innerText.includes('Math Processing Error') ? 1 : 0),
          mathjax: !!(window.MathJax && window.MathJax.Hub)};
})())"""

@pytest.fixture(scope='module')
def browser(book):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium here: .ci/run installs Debian's `chromium` with apt-get (or set ADVNORM_CHROMIUM)")
    out, _ = book
    handler = functools.partial(type('Quiet', (SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}), directory=str(out))
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix='advnorm-chromium-')
    proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', 'about:blank'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, t0 = Path(profile)/'DevToolsActivePort', time.time()
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if proc.poll() is not None or time.time() - t0 > 60: pytest.fail(f'{exe} did not start (exit code {proc.poll()})')
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10).read())
        tab = DevTools(next(t for t in targets if t['type'] == 'page')['webSocketDebuggerUrl'])
        tab('Page.enable'); tab('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)
        yield tab, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        server.shutdown(); shutil.rmtree(profile, ignore_errors=True)

def _load(tab, url: str, timeout: float = float(os.environ.get('ADVNORM_BOOK_PAGE_TIMEOUT', 180))) -> dict:
    tab('Page.navigate', url=url)
    t0 = time.time()
    while not tab.eval(READY_JS.replace('URL', json.dumps(url))):   # not the page navigated from
        if time.time() - t0 > timeout: raise TimeoutError(f'{url} did not finish loading and typesetting in {timeout} s')
        time.sleep(0.2)
    return json.loads(tab.eval(COUNT_JS))

def test_every_page_renders_its_figures_and_equations(book, browser):
    (out, pages), (tab, base) = book, browser
    seen = {}
    for p in pages:
        got = seen[p['file']] = _load(tab, f"{base}/{p['file']}")
        assert got['images'] == p['images'] and got['rendered'] == p['images'], (p['file'], got)
        if p['has_math']:
            assert got['mathjax'] and got['math_sources'] > 0, (p['file'], got)             # MathJax found the equations
            assert got['math_typeset'] >= got['math_sources'] and got['math_errors'] == 0, (p['file'], got)
        if p['file'] == SCREENSHOT_PAGE:
            ARTIFACTS.mkdir(exist_ok=True)
            png = base64.b64decode(tab('Page.captureScreenshot', format='png')['data'])
            (ARTIFACTS/f'book-{Path(SCREENSHOT_PAGE).stem}.png').write_bytes(png)
    assert sum(g['rendered'] for g in seen.values()) == sum(p['images'] for p in pages)
    print('\n'.join(f"{f}: {g['rendered']}/{g['images']} images, {g['math_typeset']} equations typeset" for f, g in seen.items()))
