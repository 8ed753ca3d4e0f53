# CAS-ViT mobile deployment toolchain. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Empty: python -m export decides (its defaults, or what the checkpoint records).
TARGET  ?=
VARIANT ?=
RES     ?=
CKPT    ?=
OUT     ?=
EXPORT_ARGS ?=
# The folder the tools that read an exported set use when OUT is not given: the default export's.
SET      = $(or $(OUT),out/xs_224)
# A variable as one shell word (paths with spaces or quotes): $(call q,$(OUT)).
q = '$(subst ','\'',$(1))'

.PHONY: help setup export test test-fast bench peers-setup android-assets android-test verify-arm clean

help: ## show this help
	@echo "CAS-ViT deployment toolchain"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo
	@echo "Variables for make export (defaults in brackets):"
	@echo "  TARGET=onnx|tflite|coreml|all [coreml]  VARIANT=xs|s|m|t|tiny [the checkpoint's, else xs]"
	@echo "  RES=224 or HxW [the checkpoint's, else 224]"
	@echo "  CKPT=path/to/checkpoint.pth (none: seeded random weights, not for deployment); it may record"
	@echo "    its variant, classes, labels and resolution: then make export CKPT=file needs nothing else"
	@echo "  CALIB=folder of images (JPEG, PNG, ... in any colour mode) for int8 calibration (default: bundled scikit-image photos)  CALIB_COUNT=N"
	@echo "  VAL=labelled images, one subfolder per class (top-1/top-5 of eager and every artifact, accuracy gate)  VAL_COUNT=N"
	@echo "  OUT=output folder [out/<variant>_<res>]  EXPORT_ARGS='more python -m export options'"
	@echo "  Every option: $(PY) -m export --help"
	@echo "  Exit codes (0 passed, 1 gate failed, 2 bad input, 3 environment, 4 internal error, 130/143 interrupted) are those of"
	@echo "  $(PY) -m export; through make any failure is make's own 2."
	@echo "make bench PEERS=1: also litert-torch and ExecuTorch (XNNPACK) side by side with ours, in .venv-peers"
	@echo "  (make peers-setup creates it; torch stays 2.13.0 CPU); per-op profile: .venv-peers/bin/python -m benchmarks.peers.profile"
	@echo "make verify-arm: installs qemu-user-static/mmdebstrap if missing and caches an arm64 root in .cache/arm64;"
	@echo "  VERIFY_ARM_ARGS='--gate-fp16-arithmetic' also fails on fp16-arithmetic misses ($(PY) -m export.verify_arm --help)"

setup: $(STAMP) ## create .venv with every pinned dependency (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# setuptools' notice about editable installs (a UserWarning of its build backend) is not for our users
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q -e ".[all]"
	touch $@

export: $(STAMP) ## export: make export [TARGET=coreml] [CKPT=...] [VARIANT=xs] [RES=224] [OUT=...]
	$(PY) -m export $(if $(TARGET),--target $(call q,$(TARGET))) $(if $(VARIANT),--variant $(call q,$(VARIANT))) $(if $(RES),--res $(call q,$(RES))) $(if $(OUT),--out $(call q,$(OUT))) $(if $(CKPT),--checkpoint $(call q,$(CKPT))) $(if $(CALIB),--calib $(call q,$(CALIB))) $(if $(CALIB_COUNT),--calib-count $(call q,$(CALIB_COUNT))) $(if $(VAL),--val-dir $(call q,$(VAL))) $(if $(VAL_COUNT),--val-count $(call q,$(VAL_COUNT))) $(EXPORT_ARGS)

test: $(STAMP) ## run the test suite: Kotlin core + resource checks, then pytest (tiny/xs models at small sizes; installs strace for the offline trace)
	$(MAKE) --no-print-directory android-test
	bash tests/tools/ensure_strace.sh
	$(PY) -m pytest -q

test-fast: $(STAMP) ## the inner loop: pytest -m "not slow" (no onnx2tf/Core ML exports, Kotlin, strace, qemu or bench smoke run)
	$(PY) -m pytest -q -m "not slow"

android-assets: $(STAMP) ## copy an exported .tflite + labels.txt + model JSON into android_app: make android-assets [OUT=out/xs_224] [MODEL=file.tflite]
	$(PY) -m export.android_assets --from $(call q,$(SET)) $(if $(MODEL),--model $(call q,$(MODEL)))

android-test: ## compile and unit-test the Kotlin core on the JVM, check app resources with aapt2 (installs kotlinc, JUnit 4, aapt)
	bash android_app/tools/android_test.sh

verify-arm: $(STAMP) ## every .tflite of OUT in the app's LiteRT on emulated ARM64 (qemu) and x86: make verify-arm [OUT=out/xs_224]
	$(PY) -m export.verify_arm $(call q,$(SET)) $(VERIFY_ARM_ARGS)

bench: $(STAMP) $(if $(PEERS),$(PEERS_STAMP)) ## latency/size/accuracy across formats: make bench [PEERS=1: also litert-torch and ExecuTorch] [BENCH_ARGS='--help' for options]
	$(PY) -m benchmarks $(if $(PEERS),--peers) $(BENCH_ARGS)

# The peer toolchains (litert-torch, ExecuTorch) pull jax, transformers and more: they get their own
# environment, pinned by benchmarks/peers/requirements.txt and held to the core's torch/numpy/LiteRT
# by benchmarks/peers/constraints.txt; the check refuses any torch but 2.13.0 on CPU.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
peers-setup: $(PEERS_STAMP) ## create .venv-peers with litert-torch and ExecuTorch for make bench PEERS=1 (idempotent)

$(PEERS_STAMP): benchmarks/peers/requirements.txt benchmarks/peers/constraints.txt pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q -c benchmarks/peers/constraints.txt -r benchmarks/peers/requirements.txt
	$(PEERS_VENV)/bin/python -c "import torch; v = torch.__version__; assert v == '2.13.0+cpu', 'peers env has torch ' + v"
	touch $@

clean: ## remove caches and build folders (never exported models, nor .venv)
	rm -rf build .pytest_cache .ruff_cache android_app/core/build
