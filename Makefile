# The newcomer's entry points. The real build is meson (meson.build).
#   make          set up the host, build everything
#   make check    run every test (unit, sanitizer, end-to-end)
#   make demo     the main job
#   make bench    the benchmark
#   make install  install under PREFIX (default /usr/local)

BUILD    ?= build
ASAN     ?= build-asan
FUZZ     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_TARGETS ?= fuzz-reply fuzz-manifest fuzz-pagemap fuzz-ns fuzz-config fuzz-spec fuzz-vmsnap
PREFIX   ?= /usr/local
PYTEST   ?= /usr/bin/python3 -m pytest
COCOON    = $(BUILD)/cocoon

.PHONY: all setup build image check unit asan analyze lint format-check fuzz fuzz-build fuzz-smoke e2e demo bench bench-quick bench-template bench-vmsnap bench-network bench-variants bench-keeper install format clean

all: build

setup:
	@sh scripts/setup-host.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX)

build: setup $(BUILD)/build.ninja
	@ninja -C $(BUILD)

# Rebuilt only when an input changed (mkimage.sh checks).
image: build
	@$(COCOON) image build

unit: build
	meson test -C $(BUILD) --print-errorlogs

# The unit tests again under ASan and UBSan; any undefined behaviour fails.
# The static guest agent cannot be linked with the sanitizers, so this build
# links the agent's sources dynamically instead (cocoon-agent-test), for the
# tests that run it as a process (agent-frames-fake, test-copy-tree).
asan: setup
	@[ -f $(ASAN)/build.ninja ] || meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false -Dguest=false
	@ninja -C $(ASAN)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C $(ASAN) --print-errorlogs

# clang's static analyzer over the host, guest and test-helper sources, from
# the build's compile_commands.json; zero findings or it fails
# (scripts/analyze.sh says which checker is off and why).
analyze: build
	sh scripts/analyze.sh $(BUILD)

# libFuzzer targets (docs/security-tests.md), in a clang build of their own with
# ASan and UBSan; any undefined behaviour counts as a crash.
$(FUZZ)/build.ninja:
	CC=clang CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -Wno-format-nonliteral" meson setup $(FUZZ) \
		-Dfuzz=true -Dguest=false -Db_sanitize=address,undefined -Db_lundef=false

fuzz-build: setup $(FUZZ)/build.ninja
	@ninja -C $(FUZZ)

# Each target for FUZZ_SECONDS, or to FUZZ_RUNS executions with FUZZ_SECONDS
# as a cap (make fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=3600); one line per
# target: executions, exec/s, crashes. What it learns stays in
# $(FUZZ)/corpus, crashes go to $(FUZZ)/crashes (scripts/fuzz.sh).
fuzz: fuzz-build
	@sh scripts/fuzz.sh long $(FUZZ) $(FUZZ_SECONDS) "$(FUZZ_RUNS)" $(FUZZ_TARGETS)

# make check: the corpus kept in the repo, then a few seconds of mutation.
fuzz-smoke: fuzz-build
	@sh scripts/fuzz.sh smoke $(FUZZ) 3 - $(FUZZ_TARGETS)

e2e: image
	$(PYTEST) -v --durations=30 tests/e2e

check: lint analyze unit asan fuzz-smoke e2e

demo: image
	sh scripts/demo.sh $(COCOON)

bench: image
	/usr/bin/python3 bench/bench.py

bench-quick: image
	/usr/bin/python3 bench/bench.py --quick --out $(BUILD)/bench-quick.json

# VM templates alone: template boot and restore beside cold boot,
# cold restore and host runc, at 16, 64 and 256 MiB; recorded under
# "template_run" in bench/results.json, the full run's figures kept.
bench-template: image
	/usr/bin/python3 bench/bench.py --template-only --record bench/results.json --out $(BUILD)/bench-template.json

# Whole-VM checkpoints alone: whole-VM checkpoint and restore
# beside the CRIU route, the template restore and host runc, at 16, 64
# and 256 MiB; recorded under "vmsnap_run" in bench/results.json, the
# full run's figures kept.
bench-vmsnap: image
	/usr/bin/python3 bench/bench.py --vmsnap-only --record bench/results.json --out $(BUILD)/bench-vmsnap.json

# The default guest beside the rootfs on virtiofs and, with
# CRIU_IMAGE=DIR, an image with another CRIU (docs/image.md): boot,
# checkpoint and restore at 64 MiB, alternating.
bench-variants: image
	/usr/bin/python3 bench/bench.py --variants-only --sizes 64 --runs 2 $(if $(CRIU_IMAGE),--criu-image $(CRIU_IMAGE)) --out $(BUILD)/bench-variants.json

# The network alone: host -> container stream and round trip,
# cocoon, cocoon's tap alone and runc side by side (bench/netbench.py).
bench-network: image
	/usr/bin/python3 bench/bench.py --network-only --out $(BUILD)/bench-network.json

# The pod keeper's cost: create and delete time, cocoon's host
# processes' RSS and PSS, with and without the keeper, side by side, with
# real VMs and with the hostile tier's fake VMM (bench/keeper.py).
bench-keeper: image
	/usr/bin/python3 bench/keeper.py --out $(BUILD)/bench-keeper.json

install: build
	meson install -C $(BUILD)

# The tree's shape (scripts/check-shape.py: no C, Python, shell, docs/*.md
# or proto file over 600 lines, no call cycle between .c files, no two .c files
# including each other's header, no call or include up the layers of
# ARCHITECTURE.md; test-check-shape.py plants one of each and checks that
# check-shape.py reports it), shellcheck at warning level for every shell script, codespell for
# the whole tree. 'fo' and 'te' are the tests' names for file objects.
# check-results.py needs the build's compile_commands.json and generated
# headers: no result of a call that can fail is dropped without a (void).
lint: setup format-check build
	python3 scripts/check-shape.py
	python3 scripts/test-check-shape.py
	python3 scripts/check-results.py $(BUILD)
	shellcheck -S warning $$(git ls-files '*.sh')
	codespell -L fo,te $$(git ls-files ':!:*.img' ':!:tests/fuzz/corpus/*')

# The C sources follow .clang-format (kernel-like: tabs, 100 columns).
# 'make format' rewrites them; 'make format-check' (part of lint, so of
# check) fails on the first file that differs and prints the diff.
C_SOURCES = $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h')

format:
	clang-format -i $(C_SOURCES)

format-check: setup
	@for f in $(C_SOURCES); do \
		clang-format "$$f" | diff -u --label "$$f" --label "$$f (clang-format)" "$$f" - || \
			{ echo "format-check: $$f differs from .clang-format; run 'make format'" >&2; exit 1; }; \
	done

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
