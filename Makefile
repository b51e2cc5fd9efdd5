# The two commands of the README:
#   make run    set up what is missing, then run the default mission on a local Ray
#   make test   the same set-up, then lint, type-check and every test tier
# Set-up is quick when already done: the venv is rebuilt only when pyproject.toml changes, and
# models are fetched only when missing.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml
MISSION ?= missions/route_clearance.yaml
SPEED   ?= 1
# Debian packages the runtime needs (installed with apt-get when run as root).
# portaudio19-dev: PyAudio (microphone); espeak-ng: the fallback voice and piper's phonemizer data;
# chromium: the avatar page in the browser tests and `twin bench avatar`;
# pocketsphinx-testdata: short real commands nothing was tuned on (the hearing benches and tests)
APT_PACKAGES ?= portaudio19-dev espeak-ng chromium pocketsphinx-testdata

# llama.cpp's AMX kernels crash on the first prompt on AMX CPUs here: build it without them
# there (scripts/llama-cpu.sh checks afterwards, and rebuilds a wheel taken from pip's cache).
LLAMA_BUILD := $(shell grep -qw amx_tile /proc/cpuinfo 2>/dev/null && echo 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON"')

.PHONY: setup system models run test lint clean

setup: system $(STAMP) models

system:
	@scripts/system-packages.sh $(APT_PACKAGES)

$(STAMP): pyproject.toml scripts/system-packages.sh scripts/llama-cpu.sh
	@scripts/system-packages.sh $(APT_PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(LLAMA_BUILD) $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[ray,audio,tts,llm,vision,emotion,avatar,review,dev]'
	@scripts/llama-cpu.sh $(BIN)/python
	@touch $@

models: $(STAMP)
	@$(BIN)/twin models fetch --config $(CONFIG)
	@$(BIN)/twin models fetch --config configs/test.yaml  # the session tests' smaller mind
	@$(BIN)/twin models fetch face-landmarker fer-emotion pose-landmarker  # --video / --camera

run: setup
	$(BIN)/twin run $(MISSION) --config $(CONFIG) --speed $(SPEED)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -m unit
	$(BIN)/pytest -m ray
	$(BIN)/pytest -m models
	$(BIN)/pytest -m e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
