"""The book: notebooks in sync with their chapters, and a full executed build."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Figures each chapter must show, and chapters that must name their model.
FIGURES = {"deep_shap_mnist": 2, "gradcam_eli5": 3, "lime": 4, "gradient_shap": 3,
           "deep_shap_cifar10": 3, "anchors": 1, "integrated_gradients": 4,
           "comparison": 5}
IMAGENET = ("gradcam_eli5", "lime", "gradient_shap", "integrated_gradients")
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md")
                  if p.read_text().startswith("---\njupytext:"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_is_in_sync_and_has_no_outputs(chapter):
    paired = ROOT / "notebooks" / f"{chapter.stem}.ipynb"
    assert paired.exists(), f"run `make sync`: {paired.name} is missing"
    md = jupytext.read(chapter)
    nb = json.loads(paired.read_text())
    cells = [(c.cell_type, c.source) for c in md.cells]
    paired_cells = [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]
    assert cells == paired_cells, f"run `make sync`: {paired.name} differs"
    assert not any(c.get("outputs") for c in nb["cells"]), "commit without outputs"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_installs_the_package_where_it_is_missing(chapter):
    """Colab opens the bare notebook: its first cell must install `helpers`
    from this repository (hidden in the site)."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    first = next(c for c in jupytext.read(chapter).cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", [])
    assert 'find_spec("helpers") is None' in first.source
    owner_repo = repo.removeprefix("https://github.com/")
    assert "git+https://github.com/" in first.source
    assert owner_repo in first.source.replace('"\n', "").replace('"', "").replace(" ", "")


def test_every_chapter_is_in_the_toc():
    listed = set(toc_files())
    assert {f"book/{p.stem}" for p in CHAPTERS} <= listed
    for name in listed:
        assert (ROOT / f"{name}.md").exists(), name


@pytest.mark.book
def test_book_builds_with_every_chapter_executed():
    """`jupyter-book build -W --keep-going`: any failing cell fails the build."""
    exe = Path(sys.executable).parent / "jupyter-book"
    command = [str(exe if exe.exists() else shutil.which("jupyter-book")),
               "build", str(ROOT), "-W", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    html = ROOT / "_build" / "html"
    for name in toc_files():
        page = (html / f"{name}.html").read_text()
        assert "Traceback (most recent call last)" not in page, name
        assert not re.search(r"\bI0000 |oneDNN custom operations", page), name
    for name, count in FIGURES.items():
        page = (html / "book" / f"{name}.html").read_text()
        images = re.findall(r'<img [^>]*src="../_images/([^"]+)"', page)
        assert len(images) >= count, f"{name}: {len(images)} figures"
        assert all((html / "_images" / i).stat().st_size > 1000 for i in images)
    for name in IMAGENET:
        text = re.sub(r"<[^>]+>", "", (html / "book" / f"{name}.html").read_text())
        assert re.search(r"This build used (VGG19|MobileNet)", text), name
    page = (html / "book" / "deep_shap_mnist.html").read_text()
    assert 'id="fig-fashion-final"' in page and 'id="fig-mnist-shap"' in page
    fashion = re.sub(r"<[^>]+>", "", page)  # the text a reader sees
    accuracy = re.search(r"FashionMNIST model reaches ([\d.]+)%", fashion)
    assert accuracy and float(accuracy.group(1)) >= 88, "FashionMNIST accuracy"
    mnist = re.search(r"The model reaches ([\d.]+)%", fashion)
    assert mnist and float(mnist.group(1)) >= 98, "MNIST accuracy"
    errors = re.findall(r"largest additivity error is ([\d.]+e[+-]\d+)", fashion)
    assert len(errors) == 2 and all(float(e) < 1e-3 for e in errors)
    cifar = re.sub(r"<[^>]+>", "", (html / "book" / "deep_shap_cifar10.html").read_text())
    accuracy = re.search(r"reaches ([\d.]+)% test accuracy", cifar)
    assert accuracy and float(accuracy.group(1)) >= 70, "CIFAR-10 accuracy"
    assert "offline mirror's JPEG" in cifar.replace("\u2019", "'")
    # The background size is the one whose two draws agree to 0.9 or more.
    agreement = re.search(r"give maps that agree\s+to (\d\.\d+) on average", cifar)
    assert agreement and float(agreement.group(1)) >= 0.9, "CIFAR-10 background size"
    ig = re.sub(r"<[^>]+>", "", (html / "book" / "integrated_gradients.html").read_text())
    relative = re.search(r"The relative difference is ([\d.]+e[+-]\d+)", ig)
    assert relative and float(relative.group(1)) < 1e-3, "IG vs Alibi"
    anchors = re.sub(r"\s+", " ", (html / "book" / "anchors.html").read_text())
    assert "Business Source License" in anchors
