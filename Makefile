# Explaining Image Classifiers: common tasks. `make help` lists them.
# Use another Python environment (e.g. conda) with `make VENV=$CONDA_PREFIX ...`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATASET ?= mnist
HOST ?= 127.0.0.1
PORT ?= 8000
# Chapters execute in book/, so a relative mirror path is made absolute here.
ifdef XAI_BOOK_MIRROR
export XAI_BOOK_MIRROR := $(abspath $(XAI_BOOK_MIRROR))
endif

.PHONY: help install book test check sync mnist mnistfashion model shap tb serve bench global clean

help:
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[book,test]'
	touch $@

install: $(VENV)/.installed  ## install the pinned dependencies into $(VENV)

book: install  ## execute every chapter and build the site in _build/html
	$(BIN)/jupyter-book build . -W --keep-going

test: install  ## unit tests, notebook sync check, and the whole book executed
	$(PY) -m pytest

check: install  ## lint + unit tests, no book build (quick, before a commit)
	$(BIN)/ruff check helpers tests
	$(PY) -m pytest -m "not book"

sync: install  ## after editing book/*.md: update the paired notebooks/*.ipynb
	$(BIN)/jupytext --sync $$(grep -l "^jupytext:" book/*.md)  # intro.md is not paired

mnist: install  ## train (or load) the MNIST CNN and write img/mnist/*.png
	$(PY) -m helpers all --dataset mnist

mnistfashion: install  ## the same for FashionMNIST: img/fashion_mnist/*.png
	$(PY) -m helpers all --dataset fashion_mnist

model: install  ## train (or load) one model: make model DATASET=fashion_mnist
	$(PY) -m helpers model --dataset $(DATASET)

shap: install  ## the Deep SHAP figures of one dataset: make shap DATASET=mnist
	$(PY) -m helpers shap --dataset $(DATASET)

tb: install  ## TensorBoard on the training logs
	$(PY) -m helpers tb

bench: install  ## time every method against its floor: bench/*.csv, *.json
	$(PY) -m helpers.bench --out bench

global: install  ## explain the FashionMNIST test set on Dask (resumable): maps/*.zarr
	$(PY) -m helpers.explain_dataset --dataset fashion_mnist --method integrated_gradients \
		--out maps/fashion_mnist-integrated_gradients.zarr

serve:  ## serve the built site on http://$(HOST):$(PORT)
	@test -f _build/html/index.html || { echo "no site yet: run make book"; exit 1; }
	$(PY) -m http.server $(PORT) --bind $(HOST) --directory _build/html

clean:  ## remove the built site and the figures (not the model cache)
	rm -rf _build img
