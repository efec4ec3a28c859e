# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Torch comes first so pip never swaps it: set TORCH to your build (e.g. TORCH=torch on a CUDA box).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install test lint format demo bench gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "== installing torch and conceptlab's dependencies into $(VENV) (first time only: minutes, mostly torch's download)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	$(PIP) install -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint browser
	$(BIN)/pytest -q

# The gallery's tests open the page in a real headless Chromium (Debian's package; playwright drives it).
.PHONY: browser
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "chromium is missing: install it with 'sudo apt-get install chromium', then run make test again." >&2; \
	  exit 1; fi; }

demo: install
	$(BIN)/conceptlab demo

# Ours against the official code's step on random models of the real widths (depth cut on a CPU; --full on a GPU).
bench: install
	$(BIN)/conceptlab bench --imagine tiny,tiny-sdxl,tiny-sd3,kandinsky-2.2-real-width,flux.1-dev-real-width --out runs/bench.json --force

# Every GPU number in one run, within 8 minutes on one H100 (docs/performance.md); QUICK=1: the same rows on a CPU.
gpu-check: install
	$(BIN)/conceptlab bench --gpu-check $(if $(QUICK),--quick) --out runs/gpu-check.json --force

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
