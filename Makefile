# Makefile: the front door. Everything real lives in CMake; this wraps the common commands.
#   make            build into build/ (binaries in build/bin/)
#   make test       install deps, build, run every test with ctest (format-check among them)
#   make demo       install deps, build, run nanocp + a managed nano-dp serving examples/greeter
#   make package    build, then the .deb packages into build/packages/ (docs/install.md)
#   make test-asan  the test suite under AddressSanitizer + UBSan (build-asan/)
#   make wpt        web-platform-tests from ../shared/wpt, per-directory table
#   make test262    ECMAScript conformance (test262) from ../shared/test262, per built-in
#   make bench      benchmarks in bench/ against peer runtimes (installs wrk and peers)
#   make format     lay out the C and C++ sources as .clang-format says; `make format-check`
#                   only lists the files that differ, failing if any (make test runs it too)
#   make clean      remove build trees
.PHONY: all build deps test demo package test-asan bench wpt test262 format format-check clean help

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure
DEMO_PORT ?= 8787

all: build

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@scripts/bootstrap

build/CMakeCache.txt:
	cmake -S . -B build $(CMAKE_FLAGS)

build: build/CMakeCache.txt
	cmake --build build -j $(JOBS)

test: deps
	$(MAKE) build
	cd build && ctest -j $(JOBS) $(CTEST_FLAGS)

demo: deps
	$(MAKE) build
	DEMO_PORT=$(DEMO_PORT) scripts/demo

package: build
	cmake --build build --target package

build-asan/CMakeCache.txt:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNANO_SANITIZE=address,undefined $(CMAKE_FLAGS)

test-asan: deps build-asan/CMakeCache.txt
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -j $(JOBS) $(CTEST_FLAGS)

wpt: deps
	$(MAKE) build
	python3 tests/wpt/run.py --bin build/bin/nano-dp $(WPT_FLAGS)

test262: deps
	$(MAKE) build
	python3 tests/test262/run.py --bin build/bin/nano-dp $(TEST262_FLAGS)

bench:
	@scripts/bootstrap --bench
	$(MAKE) build
	bench/hello.py

format:
	@scripts/format-check --fix

format-check:
	@scripts/format-check

clean:
	rm -rf build build-asan
