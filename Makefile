# The README's two commands: `make demo` (the main job) and `make test`.
# Both create .venv and install into it first; nothing else needs to be on the machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch and torchaudio are installed first, at releases this machine's disk serves
# (pyproject.toml declares only ranges). Override on another machine, e.g.
#   make test TORCH_SPEC="torch torchaudio"
TORCH_SPEC ?= torch==2.14.1 torchaudio==2.11.0

.PHONY: demo test install install-test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash recipes/demo/run.sh

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2

clean:
	rm -rf $(VENV) recipes/*/data recipes/*/exp recipes/*/feats
