# Makefile -- builds, tests and installs mq.  Plain GNU make.
#
#   make                  lib/libmq.a, bin/mq-*, build/tests/test_*, build/bench/*
#   make check            install missing Debian packages (make deps), build, run tests/run
#   make check-fault      the fault harness (tests/fault/run) at full scale
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ONLY=NAME]  libFuzzer targets (clang), tests/fuzz/
#   make SAN=1 [check]    the same with ASan+UBSan, in build/san/ (never mixed with the above)
#   make FAULT=1          test builds with fault-injection switches (-DMQ_FAULT_INJECT, e.g.
#                         MQ_FAULT_KILL_AFTER_SYNC in mq-serve), in build/fault/; the
#                         programs in bin/ never carry them.  make check builds it too.
#   make demo             share/demo.sh: a tour of the programs built so far
#   make bench            build/bench/bench_log $(BENCH_ARGS) (bench-log), then
#                         share/bench/broker.sh (bench-broker; peers from make bench-deps),
#                         then share/bench/filters.sh (bench-filters: mq-bucket, mq-dedup vs cat, awk)
#   make install [PREFIX=/usr/local] [DESTDIR=]   programs, man pages, bash/zsh/fish completions
#   make install-completions [PREFIX=] [DESTDIR=]  the completions alone
#   make uninstall | clean | deps
#
# Sources are found by wildcard: a new lib/*.c joins lib/libmq.a, a new
# cmd/mq-NAME.c becomes bin/mq-NAME, a new tests/unit/test_NAME.c becomes
# a test, a new tests/bench/NAME.c a benchmark.  Any of these folders may
# be empty.  Header dependencies come from the compiler (-MMD -MP).
#
# Outputs: normal build in bin/, lib/libmq.a, build/{obj,tests,bench}/;
# SAN=1 in build/san/{bin,lib,obj,tests,bench}/.  make check hands tests/run
# MQ_BIN (the programs under test) and MQ_UNIT_DIR (the unit binaries).
#
# pkg-config is asked lazily (recursive variables), so that `make check`
# on a machine without the -dev packages can install them first.

CC ?= cc
AR ?= ar
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
DESTDIR ?=
SAN ?= 0
FAULT ?= 0
FUZZ ?= 0
FUZZ_SECONDS ?= 60

BINDIR_INST = $(DESTDIR)$(PREFIX)/bin
MAN1DIR = $(DESTDIR)$(PREFIX)/share/man/man1
MAN5DIR = $(DESTDIR)$(PREFIX)/share/man/man5
COMPLDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPLDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPLDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
FISHFUNCDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_functions.d

# Every flag below is accepted by gcc >= 12 and clang >= 14.
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
WERROR ?= -Werror
ifeq ($(FUZZ),1)
# make fuzz: clang's libFuzzer with ASan+UBSan, in build/fuzzer/
OPT = -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SANLD = -fsanitize=address,undefined
B = build/fuzzer
OUT_BIN = $(B)/bin
OUT_LIB = $(B)/lib/libmq.a
else ifeq ($(SAN),1)
OPT = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SANLD = -fsanitize=address,undefined
B = build/san
OUT_BIN = $(B)/bin
OUT_LIB = $(B)/lib/libmq.a
else ifeq ($(FAULT),1)
OPT = -O2 -g -DMQ_FAULT_INJECT
SANLD =
B = build/fault
OUT_BIN = $(B)/bin
OUT_LIB = $(B)/lib/libmq.a
else
OPT = -O2 -g
SANLD =
B = build
OUT_BIN = bin
OUT_LIB = lib/libmq.a
endif
OBJ = $(B)/obj
OUT_TESTS = $(B)/tests
OUT_BENCH = $(B)/bench

PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags libzmq msgpack 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs libzmq msgpack 2>/dev/null || echo -lzmq -lmsgpackc) -lm
CMOCKA_CFLAGS = $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

ALL_CPPFLAGS = -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) $(CPPFLAGS)
ALL_CFLAGS = -std=c11 $(OPT) $(WARN) $(WERROR) -pthread $(CFLAGS)
ALL_LDFLAGS = -pthread $(SANLD) $(LDFLAGS)
# cmocka fixes every test's signature (void **state), often unused.
TEST_CFLAGS = -Wno-unused-parameter $(CMOCKA_CFLAGS)

LIB_SRC = $(sort $(wildcard lib/*.c))
CMD_SRC = $(sort $(wildcard cmd/mq-*.c))
TEST_SRC = $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC = $(sort $(wildcard tests/bench/*.c))
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJ = $(LIB_SRC:%.c=$(OBJ)/%.o)
CMD_OBJ = $(CMD_SRC:%.c=$(OBJ)/%.o)
TEST_OBJ = $(TEST_SRC:%.c=$(OBJ)/%.o)
BENCH_OBJ = $(BENCH_SRC:%.c=$(OBJ)/%.o)

PROGS = $(CMD_SRC:cmd/%.c=$(OUT_BIN)/%)
TESTS = $(TEST_SRC:tests/unit/%.c=$(OUT_TESTS)/%)
BENCHES = $(BENCH_SRC:tests/bench/%.c=$(OUT_BENCH)/%)
# Each fuzz target, linked with tests/fuzz/replay.c: runs it over files
# (make check replays the seed corpus and every input that once crashed).
# Under FUZZ=1 the same targets are linked with libFuzzer instead.
OUT_FUZZ = $(B)/fuzz
FUZZERS = $(FUZZ_SRC:tests/fuzz/%.c=$(OUT_FUZZ)/%)

MAN1 = $(sort $(wildcard man/*.1))
MAN5 = $(sort $(wildcard man/*.5))
# bash: completions/mq-*; zsh: completions/zsh/_*; fish: completions/fish/*.fish
# and the helper functions they share in completions/fish/functions/.
COMPLETIONS = $(sort $(filter-out %~ %.bak,$(wildcard completions/mq-*)))
ZSH_COMPLETIONS = $(sort $(filter-out %~ %.bak,$(wildcard completions/zsh/_*)))
FISH_COMPLETIONS = $(sort $(wildcard completions/fish/*.fish))
FISH_FUNCTIONS = $(sort $(wildcard completions/fish/functions/*.fish))

BENCH_PKGS = redis-server redis-tools mosquitto mosquitto-clients
DEPS_PKGS = libzmq3-dev libmsgpack-dev pkg-config libcmocka-dev bats bats-assert bats-support jq python3 sqlite3 gdb \
	bash-completion zsh fish

.PHONY: all check check-fault fuzz deps bench-deps demo bench bench-log bench-broker bench-filters bench-exec install install-completions uninstall clean FORCE
.DEFAULT_GOAL := all

all: $(OUT_LIB) $(PROGS) $(TESTS) $(BENCHES) $(FUZZERS)
	@:

# ---- compile and link ------------------------------------------------------

# Everything depends on the compiler and flags too (as git's GIT-CFLAGS
# does): `make CC=clang` after `make` rebuilds instead of mixing objects.
FLAGS_FILE = $(B)/flags
$(FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(TEST_CFLAGS) $(PKG_LIBS) $(CMOCKA_LIBS) $(LDLIBS)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

FORCE:

$(OBJ)/tests/unit/%.o: private EXTRA = $(TEST_CFLAGS)

$(OBJ)/%.o: %.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(EXTRA) -MMD -MP -c $< -o $@

# Rebuilt from scratch so that an object of a deleted source never lingers.
$(OUT_LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(PROGS): $(OUT_BIN)/%: $(OBJ)/cmd/%.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(OUT_LIB) $(PKG_LIBS) $(LDLIBS) -o $@

$(TESTS): $(OUT_TESTS)/%: $(OBJ)/tests/unit/%.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(OUT_LIB) $(CMOCKA_LIBS) $(PKG_LIBS) $(LDLIBS) -o $@

$(BENCHES): $(OUT_BENCH)/%: $(OBJ)/tests/bench/%.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(OUT_LIB) $(PKG_LIBS) $(LDLIBS) -o $@

$(OBJ)/tests/fuzz/%.o: private EXTRA = -Itests/fuzz

ifeq ($(FUZZ),1)
$(FUZZERS): $(OUT_FUZZ)/%: $(OBJ)/tests/fuzz/%.o $(OBJ)/tests/fuzz/common.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -fsanitize=fuzzer $(filter %.o,$^) $(OUT_LIB) $(PKG_LIBS) $(LDLIBS) -o $@
else
$(FUZZERS): $(OUT_FUZZ)/%: $(OBJ)/tests/fuzz/%.o $(OBJ)/tests/fuzz/common.o $(OBJ)/tests/fuzz/replay.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(filter %.o,$^) $(OUT_LIB) $(PKG_LIBS) $(LDLIBS) -o $@
endif

-include $(wildcard $(OBJ)/*/*.d $(OBJ)/*/*/*.d)

# ---- dependencies (Debian) ---------------------------------------------------

# Quiet when everything is installed; otherwise apt-get, as root or via sudo.
deps:
	@bash share/deps.sh $(DEPS_PKGS)

bench-deps:
	@bash share/deps.sh $(BENCH_PKGS)

# Sub-makes: they read this file again after deps may have installed
# pkg-config and the libraries, and they never race deps under -j.
# tests/run runs every test_* it finds, so binaries whose source is gone
# are removed first.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=0 FUZZ=0 FAULT=1 build/fault/bin/mq-serve
	@for f in $(OUT_TESTS)/test_*; do \
		case " $(TESTS) " in *" $$f "*) ;; *) [ -f "$$f" ] && rm -f "$$f" ;; esac; \
	done; true
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_UNIT_DIR="$(CURDIR)/$(OUT_TESTS)" MQ_BENCH_DIR="$(CURDIR)/$(OUT_BENCH)" \
		MQ_FUZZ_DIR="$(CURDIR)/$(OUT_FUZZ)" MQ_FAULT_BIN="$(CURDIR)/build/fault/bin" \
		UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1}" \
		bash tests/run

# The fault harness at full scale (tests/fault/run; make check runs it quick
# through tests/fault.bats).  MQ_FAULT_ONLY=NAME runs one script.
check-fault: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=0 FUZZ=0 FAULT=1 build/fault/bin/mq-serve
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_FAULT_BIN="$(CURDIR)/build/fault/bin" MQ_FAULT_SCALE=full bash tests/fault/run

# libFuzzer targets (clang) for every decoder, each run FUZZ_SECONDS from
# its seed corpus (tests/fuzz/corpus/NAME); FUZZ_ONLY=NAME runs one.
# Inputs that crash land in build/fuzzer/crashes/NAME/: copy each into
# tests/fuzz/regress/NAME/ once fixed, so make check replays it.
fuzz: deps
	@command -v clang >/dev/null || bash share/deps.sh clang
	@$(MAKE) --no-print-directory FUZZ=1 CC=clang WERROR= $(FUZZERS:$(B)/%=build/fuzzer/%)
	@FUZZ_BIN="$(CURDIR)/build/fuzzer/fuzz" FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run

demo: deps
	@$(MAKE) --no-print-directory all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_BENCH_DIR="$(CURDIR)/$(OUT_BENCH)" bash share/demo.sh

bench-log: $(OUT_BENCH)/bench_log
	$(OUT_BENCH)/bench_log $(BENCH_ARGS)

bench: bench-log bench-broker bench-filters bench-exec

# The broker against cat, Redis Streams and mosquitto (make bench-deps installs the peers).
bench-broker: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/broker.sh

# mq-sub --exec against xargs -P (MQ_BENCH_EXEC_LINES, default 5000).
bench-exec: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/exec.sh

# The pipe filters against cat and awk (MQ_BENCH_FILTER_LINES, default 10000000).
bench-filters: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/filters.sh

ifeq ($(filter $(OUT_BENCH)/bench_log,$(BENCHES)),)
$(OUT_BENCH)/bench_log:
	@echo "make bench: there is no tests/bench/bench_log.c, so no log benchmark to build and run" >&2
	@exit 1
endif

# ---- installing ---------------------------------------------------------------

install: all install-completions
	install -d "$(BINDIR_INST)"
	$(if $(PROGS),install -m 0755 $(PROGS) "$(BINDIR_INST)")
	$(if $(MAN1),install -d "$(MAN1DIR)" && install -m 0644 $(MAN1) "$(MAN1DIR)")
	$(if $(MAN5),install -d "$(MAN5DIR)" && install -m 0644 $(MAN5) "$(MAN5DIR)")

# Where bash-completion, zsh and fish look under a PREFIX (tests/completions.bats
# installs them into a temporary DESTDIR and completes from there).
install-completions:
	$(if $(COMPLETIONS),install -d "$(COMPLDIR)" && install -m 0644 $(COMPLETIONS) "$(COMPLDIR)")
	$(if $(ZSH_COMPLETIONS),install -d "$(ZSHCOMPLDIR)" && install -m 0644 $(ZSH_COMPLETIONS) "$(ZSHCOMPLDIR)")
	$(if $(FISH_COMPLETIONS),install -d "$(FISHCOMPLDIR)" && install -m 0644 $(FISH_COMPLETIONS) "$(FISHCOMPLDIR)")
	$(if $(FISH_FUNCTIONS),install -d "$(FISHFUNCDIR)" && install -m 0644 $(FISH_FUNCTIONS) "$(FISHFUNCDIR)")

uninstall:
	rm -f $(addprefix "$(BINDIR_INST)"/,$(notdir $(PROGS))) \
		$(addprefix "$(MAN1DIR)"/,$(notdir $(MAN1))) \
		$(addprefix "$(MAN5DIR)"/,$(notdir $(MAN5))) \
		$(addprefix "$(COMPLDIR)"/,$(notdir $(COMPLETIONS))) \
		$(addprefix "$(ZSHCOMPLDIR)"/,$(notdir $(ZSH_COMPLETIONS))) \
		$(addprefix "$(FISHCOMPLDIR)"/,$(notdir $(FISH_COMPLETIONS))) \
		$(addprefix "$(FISHFUNCDIR)"/,$(notdir $(FISH_FUNCTIONS)))

clean:
	rm -rf bin build lib/libmq.a
