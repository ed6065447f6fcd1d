# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv from requirements.txt on first use (and again when it changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test preview clean checkov

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# checkov pins boto3 and packaging below requirements.txt, so it gets its own virtualenv;
# tests/infra/test_manifests.py runs .venv-checkov/bin/checkov as a subprocess.
CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

checkov: $(CHECKOV_VENV)/.installed

# The main job, locally, on embedded defaults: the offline preview (with the policy
# pack) of both stacks.
run: $(VENV)/.installed
	$(PY) -m tools.preview --stack staging --json out/staging.json
	$(PY) -m tools.preview --stack production --json out/production.json

# The whole test suite (the same command CI runs).
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) out
