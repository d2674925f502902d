# ufo: the two commands a new user needs are `make run` and `make test`.
# Each installs what is missing (scripts/install-deps.sh), configures and builds.
JOBS ?= 2
BUILD ?= build
CMAKE ?= cmake

.PHONY: all deps deps-py build build-asan build-fuzz run test test-fast bench clean

all: build

deps:
	@bash scripts/install-deps.sh

# paddlepaddle (PyPI) for the real-Paddle checkpoint checks; skipped, not fatal, offline.
deps-py:
	@bash scripts/install-py-deps.sh

build: deps
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build $(BUILD) -j$(JOBS)

build-asan: deps
	@$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DUFO_SANITIZE=ON >/dev/null
	@$(CMAKE) --build build-asan -j$(JOBS)

build-fuzz: deps
	@CC=clang CXX=clang++ $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUFO_FUZZ=ON >/dev/null
	@$(CMAKE) --build build-fuzz -j$(JOBS)

# The main job on a bundled default: a small end-to-end self-check.
run: build
	@bash scripts/demo.sh $(BUILD)/ufo

# Every test: C unit tests and the PyTorch/Pillow oracles on the release build,
# the C unit tests again under ASan+UBSan, each fuzz target briefly, and the CUDA
# backend (its kernels and the code that drives them) in the CUDA emulator (no GPU needed).
test: deps-py build build-asan build-fuzz
	@$(CMAKE) -E env OMP_NUM_THREADS=2 ctest --test-dir $(BUILD) --output-on-failure -j1
	@$(CMAKE) -E env OMP_NUM_THREADS=2 ctest --test-dir build-asan -L unit --output-on-failure -j1
	@ctest --test-dir build-fuzz -L fuzz --output-on-failure -j2
	@bash tools/cuda_emu_check.sh

# Only the release build's tests (quick loop while developing).
test-fast: build
	@ctest --test-dir $(BUILD) --output-on-failure -j1

bench: build
	@bash scripts/install-bench-torch.sh
	@bash bench/run.sh $(BUILD)/ufo

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-emu
