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
SUBMISSIONS ?= submissions
PATIENCE ?=
FOLDS ?=
LRS ?=
MOMENTA ?=
SCHEDULER ?=
DASK_WORKERS ?=
REFIT ?=
KEEP ?=
BASE ?=
TTA ?=
TTA_SHIFT ?=
TRUST ?=
NETS ?=
EPOCH_CAP ?=
LR ?=
MOMENTUM ?=
QUICK ?=
PRECISION ?= auto
HOLDOUT ?=
REPORTS ?= reports
KAGGLE ?=
MESSAGE ?=
export MESSAGE
BATCHES ?=
START_LR ?=
END_LR ?=
MODELS_DIR ?= models
FLIP_AXIS ?=
VALID ?=
BUDGET ?=
MODELS ?=
JOBS ?=
PARAMS ?=
TRIALS ?= 20
STORAGE ?=
STUDY ?=
IMAGES ?=
OUT ?=
ANNOTATED ?=
DETECTOR ?=

KFKD := $(PY) -m kfkd_kit
opt = $(if $(2),$(1) $(2))
DASKOPTS = $(call opt,--scheduler,$(SCHEDULER)) $(call opt,--dask-workers,$(DASK_WORKERS))
# the overrides every training command takes, under one name each (configs.configure)
SETTINGS = --seed $(SEED) --precision $(PRECISION) $(call opt,--epochs,$(EPOCHS)) \
  $(call opt,--lr,$(LR)) $(call opt,--momentum,$(MOMENTUM)) $(call opt,--early-stopping,$(PATIENCE)) \
  $(call opt,--base,$(BASE)) $(call opt,--flip-axis,$(FLIP_AXIS)) $(call opt,--budget,$(BUDGET)) \
  $(call opt,--valid-fraction,$(VALID)) $(call opt,--params,$(PARAMS))

.PHONY: setup download train submit report cv grid zoo lrfind tune compare predict export bench test data clean help

help:
	@echo "make download [DATA=data]  Kaggle's files, unpacked (the kaggle package; ~/.kaggle/kaggle.json)"
	@echo "make train   [DATA=data] [NET=net1] [MODEL=models/NET.joblib] + settings:"
	@echo "             NET: net1..net8 or specialists (BASE=models/net6.joblib pre-trains them)"
	@echo "   settings: [EPOCHS=] [SEED=0] [LR=] [MOMENTUM=] [PATIENCE=] [BASE=] for train, cv, grid, zoo"
	@echo "             PARAMS=cv/tune-net8-best.json: the net's parameters from a JSON (make tune's best)"
	@echo "             PRECISION=auto|fp32|bf16 (auto: bf16 where the CPU has AMX/AVX512-BF16)"
	@echo "             BUDGET=10m|90s|1.5h: time per fit; the net runs as many epochs as fit"
	@echo "             FLIP_AXIS=auto|PX (the labels' mirror axis; auto: measured from the data)"
	@echo "             VALID=0.1: the share held out for the epoch table (VALID=0: train on every row)"
	@echo "             MODELS=N (train only): N nets of seeds SEED.., saved as their mean; JOBS= at a time"
	@echo "             (default: one per core, each on its share of the cores); BUDGET= is for all N"
	@echo "             HEADS=dense,softargmax (net8): the nets' heads in turn (mixed heads average better)"
	@echo "             NET=net8 BUDGET=10m or more, 2+ cores, native bf16, no MODELS/HEADS: a pair"
	@echo "             (MODELS=2 HEADS=dense,softargmax) by default; MODELS=1 for one net"
	@echo "make submit  [DATA=data] [MODEL=models/net1.joblib] [LOOKUP=] [TTA=1: flip test-time augmentation] [TTA_SHIFT=2: and a 3x3 grid of shifts]"
	@echo "             [SUBMISSIONS=submissions: the folder of the submission CSVs]"
	@echo "             [TRUST=1: load a model whose JSON sha256 is missing or does not match]"
	@echo "             [KAGGLE=1 MESSAGE=\"...\": then upload the CSV to the competition]"
	@echo "make report  [DATA=data] [MODEL=models/net1.joblib] [HOLDOUT=1: a seeded 20% hold-out]"
	@echo "             [REPORTS=reports] [TRUST=1]: error analysis -> REPORTS/<model>-<UTC>/report.html"
	@echo "make cv      [DATA=] [NET=] [FOLDS=5] [KEEP=1: save the fold models as an ensemble] + settings"
	@echo "make grid    [DATA=] [NET=] [FOLDS=3] [LRS=0.001,0.01] [MOMENTA=0.9,0.95] [REFIT=1] + settings"
	@echo "             cv and grid on Dask: SCHEDULER=tcp://host:8786 or DASK_WORKERS=N"
	@echo "make zoo     [DATA=] [NETS=net1,net2,...] [EPOCH_CAP=25,net1=400] + settings -> docs/RESULTS.md"
	@echo "make lrfind  [DATA=] [NET=] [BATCHES=250] [START_LR=1e-6] [END_LR=1] + settings"
	@echo "             lr range test -> cv/NET-lrfind.png, .json and a suggested LR="
	@echo "make tune    [DATA=] [NET=net8] [TRIALS=20: the study's total] [STORAGE=URL|journal:PATH] [STUDY=]"
	@echo "             + settings: Optuna search of net8 -> cv/tune-NET.md, -best.json (PARAMS=), PNGs"
	@echo "make compare [MODELS_DIR=models]  the saved models side by side, best first"
	@echo "make predict MODEL=models/net8.joblib IMAGES=\"photo.jpg folder/\" [OUT=keypoints.csv]"
	@echo "             [ANNOTATED=dir] [TTA=1] [TTA_SHIFT=2] [DETECTOR=mtcnn|haar] [TRUST=1]: faces in your photos"
	@echo "make export  [MODEL=models/net1.joblib] [OUT=MODEL.onnx]  the net as ONNX, checked"
	@echo "make bench   [QUICK=1]  speed ratios -> docs/RESULTS.md (a section per part)"
	@echo "make test    run the test suite"

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

download: setup
	$(KFKD) download --data $(DATA)

train: setup
	$(KFKD) train --data $(DATA) --net $(NET) --model $(MODEL) $(SETTINGS) \
	  $(call opt,--models,$(MODELS)) $(call opt,--jobs,$(JOBS)) $(call opt,--heads,$(HEADS))

submit: setup
	$(KFKD) submit --data $(DATA) --model $(MODEL) --out-dir $(SUBMISSIONS) \
	  $(call opt,--lookup,$(LOOKUP)) $(if $(TTA),--tta) $(call opt,--tta-shift,$(TTA_SHIFT)) $(if $(TRUST),--trust-model) \
	  $(if $(KAGGLE),--kaggle) $(if $(MESSAGE),--message "$$MESSAGE")

report: setup
	$(KFKD) report --data $(DATA) --model $(MODEL) --seed $(SEED) --out-dir $(REPORTS) \
	  $(if $(HOLDOUT),--holdout) $(if $(TRUST),--trust-model)

cv: setup
	$(KFKD) cv --data $(DATA) --net $(NET) $(SETTINGS) $(call opt,--folds,$(FOLDS)) $(DASKOPTS) \
	  $(if $(KEEP),--keep-models)

grid: setup
	$(KFKD) grid --data $(DATA) --net $(NET) $(SETTINGS) $(call opt,--folds,$(FOLDS)) $(if $(LRS),--lrs "$(LRS)") $(if $(MOMENTA),--momenta "$(MOMENTA)") \
	  $(DASKOPTS) $(if $(REFIT),--refit)

zoo: setup
	$(KFKD) zoo --data $(DATA) $(SETTINGS) $(call opt,--nets,$(NETS)) $(call opt,--epoch-cap,$(EPOCH_CAP))

lrfind: setup
	$(KFKD) lrfind --data $(DATA) --net $(NET) $(SETTINGS) $(call opt,--batches,$(BATCHES)) \
	  $(call opt,--start-lr,$(START_LR)) $(call opt,--end-lr,$(END_LR))

# NET defaults to net1 elsewhere; tune searches net8's space, so it takes net8 unless NET= is given
tune: setup
	$(KFKD) tune --data $(DATA) --net $(if $(filter file,$(origin NET)),net8,$(NET)) --trials $(TRIALS) \
	  $(SETTINGS) $(call opt,--storage,$(STORAGE)) $(call opt,--study,$(STUDY))

compare: setup
	$(KFKD) compare --models-dir $(MODELS_DIR)

predict: setup
	@test -n "$(IMAGES)" || { echo "make predict: give IMAGES=\"photo.jpg folder/ ...\"" >&2; exit 2; }
	$(KFKD) predict --model $(MODEL) $(IMAGES) $(call opt,--out,$(OUT)) \
	  $(call opt,--annotated,$(ANNOTATED)) $(call opt,--detector,$(DETECTOR)) $(if $(TTA),--tta) $(call opt,--tta-shift,$(TTA_SHIFT)) \
	  $(if $(TRUST),--trust-model)

export: setup
	$(KFKD) export --model $(MODEL) $(call opt,--out,$(OUT)) $(if $(TRUST),--trust-model)

bench: setup
	$(PY) -m benchmarks.bench $(if $(QUICK),--quick)

data: setup
	$(KFKD) make-data --out $(DATA)/synthetic

# every test, the slow ones included; a quick loop while editing: $(PY) -m pytest -m "not slow"
test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf models submissions/*.csv cv/*.csv cv/*.json cv/*.png
