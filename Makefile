# CAS-ViT mobile deployment toolchain. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TARGET  ?= coreml
VARIANT ?= xs
RES     ?= 224
CKPT    ?=
OUT     ?= out/$(VARIANT)_$(RES)
EXPORT_ARGS ?=

.PHONY: help setup export test bench android-assets android-test clean

help: ## show this help
	@echo "CAS-ViT deployment toolchain"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo
	@echo "Variables for make export (defaults in brackets):"
	@echo "  TARGET=onnx|tflite|coreml|all [$(TARGET)]  VARIANT=xs|s|m|t|tiny [$(VARIANT)]  RES=224 or HxW [$(RES)]"
	@echo "  CKPT=path/to/checkpoint.pth (none: seeded random weights, not for deployment)"
	@echo "  CALIB=folder of JPEG/PNG images for int8 calibration (default: bundled scikit-image photos)  CALIB_COUNT=N"
	@echo "  VAL=labelled images, one subfolder per class (top-1/top-5 of eager and every artifact, accuracy gate)  VAL_COUNT=N"
	@echo "  OUT=output folder [$(OUT)]  EXPORT_ARGS='more python -m export options'"
	@echo "  Every option: $(PY) -m export --help"

setup: $(STAMP) ## create .venv with every pinned dependency (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]"
	touch $@

export: $(STAMP) ## export: make export TARGET=coreml VARIANT=xs RES=224 [CKPT=...] [OUT=...]
	$(PY) -m export --target $(TARGET) --variant $(VARIANT) --res $(RES) --out $(OUT) $(if $(CKPT),--checkpoint $(CKPT)) $(if $(CALIB),--calib $(CALIB)) $(if $(CALIB_COUNT),--calib-count $(CALIB_COUNT)) $(if $(VAL),--val-dir $(VAL)) $(if $(VAL_COUNT),--val-count $(VAL_COUNT)) $(EXPORT_ARGS)

test: $(STAMP) ## run the test suite: Kotlin core + resource checks, then pytest (tiny/xs models at small sizes)
	$(MAKE) --no-print-directory android-test
	$(PY) -m pytest -q

android-assets: $(STAMP) ## copy an exported .tflite + labels.txt + model JSON into android_app: make android-assets [OUT=...] [MODEL=file.tflite]
	$(PY) -m export.android_assets --from $(OUT) $(if $(MODEL),--model $(MODEL))

android-test: ## compile and unit-test the Kotlin core on the JVM, check app resources with aapt2 (installs kotlinc, JUnit 4, aapt)
	bash android_app/tools/android_test.sh

bench: $(STAMP) ## latency/size/accuracy across formats: make bench [BENCH_ARGS='--help' for options]
	$(PY) -m benchmarks $(BENCH_ARGS)

clean: ## remove build outputs (keeps .venv)
	rm -rf out build .pytest_cache android_app/core/build
