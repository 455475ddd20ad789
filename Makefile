# The README's commands. PROFILE=smoke|quick|paper (default quick).
PROFILE ?= quick
PYTHON ?= python

.PHONY: install report test bench bench-k bench-peers bench-bf16 sync notebooks
install:
	$(PYTHON) -m pip install -e ".[dev]"

report:  ## the main job: run the grid and render report/
	$(PYTHON) -m vae_lib report --profile $(PROFILE)

test:
	$(PYTHON) -m pytest

bench:  ## speed benchmark (not part of the tests)
	$(PYTHON) benchmarks/bench.py

PEER_VENV ?= .peer-venv
bench-k:  ## seconds per epoch for every K of the paper's K sweep, one run (the report's time-vs-K panel)
	$(PYTHON) benchmarks/bench.py --only k_sweep --epochs 2

bench-peers:  ## pythae's VampPrior VAE beside ours, same run (pythae in its own virtual environment)
	test -x $(PEER_VENV)/bin/python || (python3 -m venv $(PEER_VENV) \
	  && $(PEER_VENV)/bin/pip install -q torch==2.13.0 && $(PEER_VENV)/bin/pip install -q pythae==0.1.2)
	$(PYTHON) benchmarks/bench_peers.py --peer-python $(PEER_VENV)/bin/python

bench-bf16:  ## does bfloat16 mixed precision pay for training here? (not part of the tests)
	$(PYTHON) benchmarks/bf16_probe.py

sync:  ## re-pair the notebooks after editing their .py sources
	$(PYTHON) -m jupytext --sync notebooks/*.py

notebooks:  ## execute the training and evaluation notebooks (smoke), own_model and theory (quick) in place, as committed
	$(PYTHON) -m jupytext --sync notebooks/*.py
	$(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace notebooks/training.ipynb
	$(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace notebooks/evaluation.ipynb
	$(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace notebooks/own_model.ipynb
	$(PYTHON) -m papermill notebooks/theory.ipynb notebooks/theory.ipynb -p profile quick
	$(PYTHON) -m vae_lib.pipeline.nbclean notebooks/training.ipynb notebooks/evaluation.ipynb notebooks/own_model.ipynb notebooks/theory.ipynb
