# kfkd_kit's front door. `make train` and `make test` each work alone on a fresh machine:
# the first target that needs Python builds .venv from requirements.txt (torch==2.13.0 pinned).
#
# `make help` prints the table below: a "## " line documents the variable under it, and a
# target's "## " its line. Each variable is the option of the same name of the kfkd command
# a target runs (TTA_SHIFT=2 is --tta-shift 2, TRUST=1 is --trust); empty means that
# command's own default, and a flag such as TTA= is on unless empty or 0. A variable given
# to a target that does not take it is an error, not ignored. tests/commands/test_make.py checks the
# table against the targets and the commands' options.

## the Python that builds .venv
PYTHON ?= python3
## the virtual environment every target runs in
VENV ?= .venv
## an extra pip index torch is installed from when .venv is built, e.g. https://download.pytorch.org/whl/cpu for the CPU wheel on a machine without CUDA; empty: PyPI's, which on Linux is the CUDA build (several GB)
TORCH_INDEX ?=

## the folder of Kaggle's files (default: data; only data/ falls back to the built-in synthetic faces)
DATA ?=
## the named net: net1..net8 or specialists (default: net1; tune: net8)
NET ?=
## the model file: written by train (and cv with KEEP_MODELS, grid with REFIT, stack), read by submit, report, predict, serve, export (default: models/NET.joblib for train, models/stack.joblib for stack, else models/net1.joblib)
MODEL ?=
## where the command writes: submit a folder or .csv (submissions), report and audit a folder (reports), predict a CSV (keypoints.csv), export an .onnx, cv/grid/lrfind/tune a folder (cv), zoo a .md
OUT ?=
## seed of the weights, splits and augmentation (default: 0)
SEED ?=
## override the net's epochs
EPOCHS ?=
## time per fit, e.g. 10m, 90s, 1.5h: as many epochs as fit (replaces EPOCHS)
BUDGET ?=
## learning rate (net8: the one-cycle peak)
LR ?=
## SGD momentum
MOMENTUM ?=
## stop after N epochs without a better valid loss (0: off)
PATIENCE ?=
## the share of training rows held out for the epoch table; 0 trains on every row (default: the recipe's, else the net's, 0.2, net8 0.1)
VALID ?=
## auto, fp32 or bf16 (default: auto, bf16 where the CPU/GPU computes it natively)
PRECISION ?=
## cpu or cuda (default: cuda if present)
DEVICE ?=
## the labels' mirror axis in pixels, or auto (default: auto, measured)
FLIP_AXIS ?=
## the labels' x (and y) of the top-left pixel's centre: 0.5 continuous coordinates, 1 one-based, 0 zero-based pixel centres; train keeps it in the model, make-data writes labels in it, audit reads them so (default: 0.5)
PIXEL_ORIGIN ?=
## a saved model whose layers start the net (pre-training)
BASE ?=
## a JSON of the net's parameters, e.g. cv/tune-net8-best.json from make tune
PARAMS ?=
## train N nets of seeds SEED.. and save their mean (default: the budget's recipe: net8 on 2+ cores with native bf16 trains 2 from BUDGET=10m, 3 from 45m; else 1)
ENSEMBLE ?=
## with ENSEMBLE: nets trained at a time (default: the recipe's, else -1, one per core)
JOBS ?=
## net8's heads, e.g. dense,softargmax: with ENSEMBLE, the nets' heads in turn (default: the recipe's, else dense)
HEADS ?=
## W: then train again on the test images' pseudo-labels, where the first model's flip and shift views agree, each such row of weight W (1, 1/2, 1/3, ...) against a labelled row (default: off)
PSEUDO_LABELS ?=
## 1: add each labelling group's measured offset (the 4-point and the 15-point rows); submit predicts each test image in its group's convention
LABELLER_BIAS ?=
## Kaggle's IdLookupTable.csv (default: the data folder's)
LOOKUP ?=
## 1: flip test-time augmentation
TTA ?=
## PX: with TTA, also average over a 3x3 grid of shifts PX pixels apart (2 was measured)
TTA_SHIFT ?=
## 1: load a model whose JSON sha256 is missing or does not match
TRUST ?=
## 1: then upload the CSV to the competition (~/.kaggle/kaggle.json)
KAGGLE ?=
## the Kaggle submission's description (default: the CSV's name)
MESSAGE ?=
## the share of rows held out to score on (zoo, tune: 0.2; report: none, the model's own validation split)
HOLDOUT ?=
## k of the k-fold CV (cv: 5, grid: 3)
FOLDS ?=
## 1: save cv's fold models as one ensemble (MODEL=, default models/NET-cv<k>.ensemble.joblib; stack needs them)
KEEP_MODELS ?=
## stack's cv runs, comma-separated, e.g. cv/net8-20260101T000000Z,cv/net7-20260101T010000Z (same FOLDS and SEED, each with KEEP_MODELS=1)
RUNS ?=
## stack's members: refit (each run's net trained again on every row, the default) or folds (each run's kept fold models)
MEMBERS ?=
## grid's learning rates, comma-separated
LRS ?=
## grid's momenta, comma-separated
MOMENTA ?=
## 1: refit grid's best on all rows and save it (MODEL=, default models/NET-grid.joblib)
REFIT ?=
## a Dask scheduler for cv, grid and stack's refit, e.g. tcp://host:8786
SCHEDULER ?=
## start a local Dask cluster of N workers for cv, grid and stack's refit
DASK_WORKERS ?=
## zoo's nets, comma-separated (default: net1..net8,specialists)
NETS ?=
## zoo's epochs at most, with exceptions, e.g. 25,net1=400
EPOCH_CAP ?=
## lrfind's training batches at most (default: 250)
BATCHES ?=
## lrfind's first lr (default: 1e-6)
START_LR ?=
## lrfind's last lr (default: 1)
END_LR ?=
## tune: run until the study has N finished trials (default: 20)
TRIALS ?=
## tune's Optuna storage: an RDB URL or journal:PATH (default: sqlite:///OUT/tune-NET.db)
STORAGE ?=
## tune's study name (default: the net's)
STUDY ?=
## compare: the folder of the saved models (default: models)
MODELS_DIR ?=
## predict: the photos and folders of photos, e.g. IMAGES="me.jpg holidays/", or videos (IMAGES=clip.mp4: one row per face per frame)
IMAGES ?=
## predict: also draw the faces into this folder (one video: a file, e.g. ANNOTATED=out.mp4)
ANNOTATED ?=
## predict, serve: auto, mtcnn or haar (default: auto)
DETECTOR ?=
## serve: the address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 is reachable from the network)
HOST ?=
## serve: the TCP port (default: 8000)
PORT ?=
## predict and serve: drop faces whose detector score is under this (default: 0)
MIN_SCORE ?=
## predict: 1: steady the keypoints of videos with a One Euro filter per face
SMOOTH ?=
## audit: also write a cleaned copy of the training file to this .csv, its log of every change beside it (<stem>-changes.csv)
CLEAN ?=
## audit: 1 also runs a face detector (MTCNN) on every image and reports those where it finds none (minutes)
FIND_FACES ?=
## audit: also check each label against a make cv run's out-of-fold predictions (cv/oof-<run>.json or cv/<run>)
OOF ?=
## bench: 1 for a quick run
QUICK ?=

PY := $(VENV)/bin/python
KFKD := $(PY) -m kfkd_kit
BUILD_VARS := PYTHON VENV TORCH_INDEX
# the overrides every training command takes (configs.configure)
SETTINGS := SEED EPOCHS BUDGET LR MOMENTUM PATIENCE VALID PRECISION DEVICE FLIP_AXIS PIXEL_ORIGIN BASE \
  PARAMS
DASK := SCHEDULER DASK_WORKERS

# the option of a variable: TTA_SHIFT -> --tta-shift
lc = $(subst Z,z,$(subst Y,y,$(subst X,x,$(subst W,w,$(subst V,v,$(subst U,u,$(subst T,t,$(subst S,s,$(subst R,r,$(subst Q,q,$(subst P,p,$(subst O,o,$(subst N,n,$(subst M,m,$(subst L,l,$(subst K,k,$(subst J,j,$(subst I,i,$(subst H,h,$(subst G,g,$(subst F,f,$(subst E,e,$(subst D,d,$(subst C,c,$(subst B,b,$(subst A,a,$(1)))))))))))))))))))))))))))
option = --$(subst _,-,$(call lc,$(1)))
quote = '$(subst ','\'',$(1))'
# "--name 'value'" for each variable in $(1) that is set; "--name" for each flag in $(2)
# that is set and not 0. Then the command line has the option of each variable, by name.
options = $(foreach v,$(1),$(if $($(v)),$(call option,$(v)) $(call quote,$(value $(v))))) \
  $(foreach v,$(2),$(if $(filter-out 0,$($(v))),$(call option,$(v))))
# the variables given on make's command line; one the target does not take is an error
given = $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v)))
RENAMED := MODELS:ENSEMBLE SUBMISSIONS:OUT REPORTS:OUT KEEP:KEEP_MODELS
renamed = $(patsubst $(1):%,%,$(filter $(1):%,$(RENAMED)))
check = $(foreach v,$(filter-out $(1) $(BUILD_VARS),$(given)),$(error make $@: $(v)= is not \
  a variable of $@$(if $(call renamed,$(v)), (it is now $(call renamed,$(v))=)); it takes \
  $(strip $(1))))
# run kfkd command $(1) with the variables $(2) and the flags $(3); $(4): the variables the
# recipe passes itself
kfkd = $(call check,$(2) $(3) $(4))$(KFKD) $(1) $(strip $(call options,$(2),$(3)))

.PHONY: setup download train submit report audit cv stack grid zoo lrfind tune compare predict serve export bench test data clean help

help: ## this table
	@awk '$(HELP_AWK)' $(firstword $(MAKEFILE_LIST))

# targets (a "## " after a target's prerequisites), then variables (a "## " line above one)
HELP_AWK := /^[a-z][a-z_-]*:.*\#\# / { sub(/:.*\#\# /, "\t"); split($$0, t, "\t"); \
  targets[++n] = sprintf("  make %-8s %s", t[1], t[2]) }; \
  /^\#\# / { doc = substr($$0, 4); next }; \
  /^[A-Z_]+ \?=/ && doc { name = $$1; value = $$0; sub(/^[A-Z_]+ \?= */, "", value); \
  vars[++m] = sprintf("  %-14s %s", name "=" value, doc) }; { doc = "" }; \
  END { print "make TARGET [VARIABLE=value ...]\n"; for (i = 1; i <= n; i++) print targets[i]; \
  print "\nVariables: each is the option of the same name of the command a target runs (TTA_SHIFT=2 is --tta-shift 2);"; \
  print "empty: the default of that command, which kfkd COMMAND --help shows"; \
  for (i = 1; i <= m; i++) print vars[i] }

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	  --index-url $(TORCH_INDEX) "$$(grep -E '^torch==' requirements.txt)")
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed ## build .venv (TORCH_INDEX= picks where torch comes from)

download: setup ## Kaggle's files, unpacked into DATA (the kaggle package; ~/.kaggle/kaggle.json)
	$(call kfkd,download,DATA)

train: setup ## train NET: MODEL, its JSON and PNGs
	$(call kfkd,train,DATA NET MODEL $(SETTINGS) ENSEMBLE JOBS HEADS PSEUDO_LABELS,LABELLER_BIAS)

submit: setup ## a Kaggle submission CSV from MODEL into OUT; KAGGLE=1 uploads it
	$(call kfkd,submit,DATA MODEL OUT LOOKUP TTA_SHIFT MESSAGE,TTA TRUST KAGGLE)

report: setup ## error analysis of MODEL: OUT/<model>-<UTC>/report.html
	$(call kfkd,report,DATA MODEL OUT HOLDOUT SEED,TRUST)

audit: setup ## a data audit of DATA without a net: OUT/audit-<UTC>/audit.html; CLEAN= writes a cleaned training file; OOF= a cv run's residuals
	$(call kfkd,audit,DATA OUT CLEAN OOF PIXEL_ORIGIN,FIND_FACES)

cv: setup ## k-fold cross-validation of NET: RMSE per fold, out-of-fold predictions (cv/oof-*)
	$(call kfkd,cv,DATA NET MODEL OUT $(SETTINGS) ENSEMBLE JOBS HEADS FOLDS $(DASK),KEEP_MODELS)

stack: setup ## stack cv RUNS: a meta-model on their out-of-fold predictions, nested-CV scored, saved as MODEL
	$(call kfkd,stack,DATA RUNS MODEL MEMBERS $(DASK))

grid: setup ## GridSearchCV of NET over LRS x MOMENTA
	$(call kfkd,grid,DATA NET MODEL OUT $(SETTINGS) FOLDS LRS MOMENTA $(DASK),REFIT)

zoo: setup ## every net on one held-out split: a Markdown table in OUT (docs/RESULTS.md)
	$(call kfkd,zoo,DATA OUT $(SETTINGS) NETS EPOCH_CAP HOLDOUT)

lrfind: setup ## learning-rate range test of NET: OUT/NET-lrfind.png, .json, a suggested LR=
	$(call kfkd,lrfind,DATA NET OUT $(SETTINGS) BATCHES START_LR END_LR)

tune: setup ## Optuna search of net8: OUT/tune-NET.md, -best.json (for PARAMS=), PNGs
	$(call kfkd,tune,DATA NET OUT $(SETTINGS) TRIALS STORAGE STUDY HOLDOUT)

compare: setup ## the saved models side by side, best first
	$(call kfkd,compare,MODELS_DIR)

predict: setup ## keypoints of the faces in IMAGES (photos or videos): a CSV in OUT (keypoints.csv)
	@test -n "$(IMAGES)" || { echo "make predict: give IMAGES=\"photo.jpg folder/ ...\"" >&2; exit 2; }
	$(call kfkd,predict,MODEL OUT ANNOTATED DETECTOR MIN_SCORE TTA_SHIFT,TTA TRUST SMOOTH,IMAGES) $(IMAGES)

serve: setup ## a web page and a JSON API for keypoints on photos at http://HOST:PORT/ (Ctrl-C stops)
	$(call kfkd,serve,MODEL HOST PORT DETECTOR MIN_SCORE TTA_SHIFT,TTA TRUST)

export: setup ## MODEL as ONNX, checked against torch
	$(call kfkd,export,MODEL OUT,TRUST)

bench: setup ## speed ratios -> docs/RESULTS.md
	$(call check,QUICK)$(PY) -m benchmarks.bench $(strip $(call options,,QUICK))

data: setup ## the built-in synthetic faces written into DATA/synthetic (or OUT)
	$(call kfkd,make-data,DATA OUT SEED PIXEL_ORIGIN)

# every test, the slow ones included; a quick loop while editing: $(PY) -m pytest -m "not slow"
test: setup ## run the test suite
	$(PY) -m pytest -q tests

clean: ## remove the models and the cv/ and submission outputs
	rm -rf models submissions/*.csv cv/*.csv cv/*.json cv/*.png
