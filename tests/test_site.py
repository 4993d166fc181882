"""The built site in a real browser (headless Debian Chromium via Selenium).

Runs after test_book.py has built the site. Screenshots go to
_build/screenshots/ as artefacts of the run.
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from test_book import FIGURES, ROOT, toc_files

HTML = ROOT / "_build" / "html"
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
        "return Array.from(document.querySelectorAll('.cell_output')).map(e => e.innerText).join('\\n')")
    assert "Traceback (most recent call last)" not in outputs
    assert not re.search(r"I0000 |oneDNN custom operations|absl::InitializeLog", outputs)
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    for link in links:
        parsed = urlparse(link)
        if parsed.netloc == urlparse(site).netloc:
            target = HTML / parsed.path.lstrip("/")
            if parsed.path.endswith("/"):
                target = target / "index.html"
            assert target.exists(), f"{name}: dead internal link {link}"
    launches = [l for l in links if "mybinder.org" in l or "colab.research" in l]
    if name != "intro":
        assert len(launches) == 2, f"{name}: launch buttons {launches}"
        for link in launches:
            notebook = re.search(r"notebooks/[\w-]+\.ipynb", link)
            assert notebook and (ROOT / notebook.group(0)).exists(), link
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(exist_ok=True)
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
