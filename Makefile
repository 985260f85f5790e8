# objret's two everyday commands (the README's quick start) and the checks CI adds.
#   make reproduce   install into .venv and run the default reproduce notebook on the embedded synthetic world
#   make test        install (with the developer tools) into .venv and run nbdev-test and pytest tests/
#   make outputs     execute the chapter notebooks and keep their (small) outputs for JupyterLab and the docs
#   make test-slow   also the notebook cells marked `#| slow` (the tiny CLIP over the whole test split: minutes)
#   make test-install  a fresh venv with only `pip install '.[cpu]'`: the CLI, a build and a search, the tutorial (minutes)
#   PARAMS='-p max_images 40'  extra papermill parameters for `make reproduce`
#   FAISS=cpu VENV=.venv-cpu   install faiss-cpu instead of faiss-gpu (CPU-only machines, macOS), in its own venv
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
MAIN_NB ?= nbs/reproduce_flickr.ipynb
RESULTS ?= results
PARAMS  ?=
FAISS   ?= gpu
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: install install-dev reproduce test test-slow test-install check-sync readme outputs bench

# objret and what its notebooks need; the developer tools (nbdev, pytest, Ray, …) on top for test, check-sync, outputs, readme
$(VENV)/.installed-$(FAISS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(FAISS)]'
	touch $@

$(VENV)/.installed-dev-$(FAISS): $(VENV)/.installed-$(FAISS)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,$(FAISS)]'
	touch $@

install: $(VENV)/.installed-$(FAISS)

install-dev: $(VENV)/.installed-dev-$(FAISS)

reproduce: install
	mkdir -p $(RESULTS)
	$(BIN)/papermill $(MAIN_NB) $(RESULTS)/$(notdir $(MAIN_NB)) -k python3 -p results_dir $(RESULTS) $(PARAMS)
	@echo "tables and figures: $(RESULTS)/"

test: install-dev
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest -q tests

test-slow: install-dev
	$(BIN)/nbdev-test --n-workers 1 --flags slow

# what a user installs is what is tested: a fresh venv with the runtime extra only (no dev tools), outside the repo
test-install: install-dev
	OBJRET_TEST_INSTALL=1 $(BIN)/python -m pytest -q tests/test_install.py

# notebooks and package in sync, notebooks clean: nbdev-export and nbdev-clean must change nothing
# (nbdev rewrites pyproject.toml unchanged; its old time is put back so that `install` does not run again)
check-sync: install-dev
	@before="$$(git status --porcelain -- objret nbs; git diff -- objret nbs | sha1sum)"; \
	keep="$$(mktemp)"; cp -p pyproject.toml "$$keep"; \
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean && \
	{ cmp -s pyproject.toml "$$keep" && touch -r "$$keep" pyproject.toml; rm -f "$$keep"; } && \
	after="$$(git status --porcelain -- objret nbs; git diff -- objret nbs | sha1sum)"; \
	if [ "$$before" != "$$after" ]; then echo "nbdev-export/nbdev-clean changed files: notebooks and objret/ were out of sync or unclean"; \
	  git status --short -- objret nbs; exit 1; fi; echo "notebooks and objret/ in sync and clean"

# chapter notebooks executed with their outputs kept (small: stderr dropped, images shrunk, ≤ 200 kB per notebook)
outputs: install-dev
	$(BIN)/python tools/keep_outputs.py
	$(BIN)/nbdev-clean

# README.md from nbs/index.ipynb; its images live in nbs/images/ (relative to the notebook, so the docs site finds them too)
readme: install-dev
	$(BIN)/jupyter nbconvert --log-level=WARN --to markdown nbs/index.ipynb --output-dir . --output README
	sed -i 's#](images/#](nbs/images/#g' README.md

bench: install-dev
	$(BIN)/python bench/index.py
	$(BIN)/python bench/dense_cluster.py
