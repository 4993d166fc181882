"""The built site in a real browser (headless Debian Chromium via Selenium).

Runs after test_book.py has built the site (or on the site in
$XAI_BOOK_SITE, e.g. a copy of a CI run's _build/html). Screenshots go to
_build/screenshots/ as artefacts of the run.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from test_book import FIGURES, ROOT, toc_files

HTML = Path(os.environ.get("XAI_BOOK_SITE") or ROOT / "_build" / "html")
# Outputs that tell a reader nothing: library noise (see helpers/_quiet.py)
# and paths of the machine that built the book.
NOISE = re.compile(r"/work/|/tmp/|/home/|/root/|site-packages|\.venv\b"
                   r"|Your TensorFlow version is newer|retracing"
                   r"|The structure of `inputs`")
SHRUNK = 0.75  # a figure shown narrower than this share of its pixels is unreadable
GAP = 6  # px: the least space between the texts of neighbouring table cells
# Per figure: its natural and shown width, and whether its cell is full width.
FIGURE_WIDTHS = """return Array.from(document.querySelectorAll('main img'))
  .filter(i => (i.getAttribute('src') || '').includes('_images/'))
  .map(i => [i.getAttribute('src').split('/').pop(), i.naturalWidth,
             i.getBoundingClientRect().width,
             !!i.closest('.tag_full-width, .tag_full_width, .full-width, .full_width')])"""
# Per table row: neighbouring cells whose texts overlap or nearly touch, or a
# cell whose text overflows it.
CROWDED_CELLS = """const crowded = [];
const textBox = cell => { const r = document.createRange(); r.selectNodeContents(cell);
  return r.getBoundingClientRect(); };
for (const row of document.querySelectorAll('main table tr')) {
  const cells = Array.from(row.children).filter(c => c.innerText.trim());
  for (const c of cells) if (c.scrollWidth > c.clientWidth + 1)
    crowded.push(`overflows: ${c.innerText.trim()}`);
  for (let k = 1; k < cells.length; k++) {
    const gap = textBox(cells[k]).left - textBox(cells[k - 1]).right;
    if (gap < arguments[0])
      crowded.push(`${cells[k - 1].innerText.trim()}|${cells[k].innerText.trim()} (${gap}px)`);
  }
}
return crowded;"""
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.book,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="Debian's chromium and chromium-driver are not installed")]


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        pytest.fail("the site is not built: run `make book` (or test_book.py) first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


PAGES = toc_files()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.split("/")[-1])
def test_page_renders(site, browser, page):
    url = urljoin(site, f"{page}.html")
    browser.get(url)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and "127.0.0.1" in entry["message"]
              and "favicon.ico" not in entry["message"]  # the browser's own guess
              # pydata-sphinx-theme's notice on a first visit (empty localStorage)
              and "Got invalid theme mode" not in entry["message"]]
    assert not errors, errors
    images = browser.execute_script(
        "return Array.from(document.querySelectorAll('main img')).map("
        "i => [i.getAttribute('src'), i.complete && i.naturalWidth])")
    broken = [src for src, width in images if not width]
    assert not broken, f"images that did not load: {broken}"
    name = page.split("/")[-1]
    figures = len([src for src, _ in images if "_images/" in (src or "")])
    assert figures >= FIGURES.get(name, 0), f"{name}: {figures} figures"
    outputs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output'))"
        ".map(e => e.innerText).join('\\n')")
    assert "Traceback (most recent call last)" not in outputs
    assert not re.search(r"I0000 |oneDNN custom operations|absl::InitializeLog", outputs)
    # What the reader sees: no noise, figures at a legible size, tables apart.
    problems = []
    noise = sorted({line.strip()[:160] for line in outputs.splitlines() if NOISE.search(line)})
    if noise:
        problems.append(f"outputs with library noise or build paths: {noise}")
    shrunk = [f"{src[:12]} {shown:.0f}/{natural}px" for src, natural, shown, full
              in browser.execute_script(FIGURE_WIDTHS)
              if not full and shown < SHRUNK * natural]
    if shrunk:
        problems.append(f"figures shown below {SHRUNK:.0%} of their width (draw them "
                        f"narrower or tag the cell full-width): {shrunk}")
    crowded = browser.execute_script(CROWDED_CELLS, GAP)
    if crowded:
        problems.append(f"table cells run together: {crowded[:6]}")
    assert not problems, f"{name}: " + "; ".join(problems)
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for link in links:
        parsed = urlparse(link)
        if parsed.netloc == urlparse(site).netloc:
            target = HTML / parsed.path.lstrip("/")
            if parsed.path.endswith("/"):
                target = target / "index.html"
            assert target.exists(), f"{name}: dead internal link {link}"
    launches = [url for url in links if "mybinder.org" in url or "colab.research" in url]
    # Every executable chapter has a paired notebook to launch; intro and
    # references are plain pages.
    if (ROOT / "notebooks" / f"{name}.ipynb").exists():
        assert len(launches) == 2, f"{name}: launch buttons {launches}"
        for link in launches:
            notebook = re.search(r"notebooks/[\w-]+\.ipynb", link)
            assert notebook and (ROOT / notebook.group(0)).exists(), link
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / f"{name}.png"))
    print(f"{name}: {figures} figures")


def test_search_finds_a_chapter_word(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(urljoin(site, "search.html?q=superpixels"))
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const r = document.querySelector('#search-results');"
        "return r && r.querySelectorAll('li').length > 0"))
    hits = browser.execute_script(
        "return Array.from(document.querySelectorAll('#search-results li a')).map(a => a.href)")
    assert any("lime" in hit for hit in hits), hits
