# The two commands: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs, so on a fresh clone either one alone does all the set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PYTEST_ARGS ?= -m "not slow"
DEMO_ARGS ?=

.PHONY: demo test test-all install install-test oracle bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate setup.cfg pyproject.toml
	$(PIP) install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,plot]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Optional peers (torch CPU 2.13.0, librosa, kaldi-native-fbank, python_speech_features, jiwer,
# warprnnt-numba) for oracle tests.
oracle: $(VENV)/.installed-test
	$(PIP) install --quiet -e ".[test,plot,oracle]"

demo: $(VENV)/.installed
	$(PY) -m scratchasr.demo $(DEMO_ARGS)

# Exit code 5 (no tests collected) is a failure, as is any other non-zero code.
test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -m ""

bench: $(VENV)/.installed
	@for f in experiments/bench/bench_*.py; do echo "== $$f"; OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
