# One entry point for set-up, the main job and the tests. Every target builds the venv if missing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GRID ?= default
JOBS ?= 2
STAMP := $(VENV)/.installed

.PHONY: venv bench test docs data perf clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# learn2learn 0.2.0's C files need regenerating on Python 3.11: build_ext makes setup.py re-run Cython.
	PIP_CONFIG_SETTINGS=--build-option=build_ext $(BIN)/pip install --use-pep517 \
	    "torch==2.14.1" "torchvision==0.29.1" "numpy==1.26.4" "learn2learn==0.2.0"
	$(BIN)/pip install -e .
	$(BIN)/python -c "import torch, learn2learn, pyarrow, pandas, scipy, rich; print('venv ok')"
	touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(BIN)/python -m bench data synth --name xuetangx-synth --if-missing

bench: data
	$(BIN)/python -m bench run --grid $(GRID) --jobs $(JOBS)
	$(BIN)/python -m bench report --grid $(GRID) --html results/report.html

test: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory docs

# The docs' strict build (mkdocs.yml): a broken link or a page left out of the nav fails it. Into a
# temporary folder, removed after, so a test run leaves no site behind.
docs: $(STAMP)
	@out=$$(mktemp -d) && $(BIN)/mkdocs build --strict --quiet --site-dir "$$out"; status=$$?; rm -rf "$$out"; \
	    test $$status -eq 0 && echo "docs ok (mkdocs build --strict)"; exit $$status

perf: $(STAMP)
	$(BIN)/python -m bench perf

clean:
	rm -rf $(VENV)
