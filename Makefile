# kfkd_kit's front door. `make train` and `make test` each work alone on a fresh machine:
# the first target that needs Python builds .venv from requirements.txt (torch==2.13.0 pinned).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data
NET ?= net1
EPOCHS ?=
SEED ?= 0
MODEL ?= models/$(NET).joblib
LOOKUP ?=
PATIENCE ?=

KFKD := $(PY) -m kfkd_kit
opt = $(if $(2),$(1) $(2))

.PHONY: setup train submit test data clean help

help:
	@echo "make train   [DATA=data] [NET=net1] [EPOCHS=] [MODEL=models/NET.joblib] [PATIENCE=]"
	@echo "make submit  [DATA=data] [MODEL=models/net1.joblib] [LOOKUP=]"
	@echo "make test    run the test suite"

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

train: setup
	$(KFKD) train --data $(DATA) --net $(NET) --model $(MODEL) --seed $(SEED) \
	  $(call opt,--epochs,$(EPOCHS)) $(call opt,--early-stopping,$(PATIENCE))

submit: setup
	$(KFKD) submit --data $(DATA) --model $(MODEL) $(call opt,--lookup,$(LOOKUP))

data: setup
	$(KFKD) make-data --out $(DATA)/synthetic

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf models submissions/*.csv cv/*.csv cv/*.json cv/*.png
