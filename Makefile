# sluice - the two commands: `make run` and `make test`. CMake does the build.
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# FUZZ_RUNS=N: stop each harness after N executions too (see scripts/fuzz.sh).
FUZZ_RUNS ?=
ARGS ?=

.PHONY: all deps build run test test-build bench fuzz format clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DSL_TESTS=OFF -DSL_ALLOC_FAULTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@./$(BUILD)/sluice $(ARGS)

test-build: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON -DSL_ALLOC_FAULTS=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)

test: test-build build
	@cd $(TEST_BUILD) && ctest --output-on-failure

# The comparison of issue 5, within 20 minutes from here (run.py skips what
# would pass it): `make bench`, or `make bench ARGS=--quick` (a few minutes).
bench: BENCH_T0 := $(shell date +%s)
bench: deps
	@bash bench/install.sh
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DSL_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@$(MAKE) -s -C bench
	@/usr/bin/python3 bench/run.py --t0 $(BENCH_T0) --build $(BUILD) $(ARGS)

fuzz: deps
	@bash scripts/deps.sh --fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSL_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) bash scripts/fuzz.sh $(FUZZ_BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
