# Makefile -- builds, tests and installs mq.  Plain GNU make.
#
#   make                  lib/libmq.a, bin/mq-*, build/tests/test_*, build/bench/*
#   make check            install missing Debian packages (make deps), build, run tests/run
#   make check-fault      the fault harness (tests/fault/run) at full scale
#   make check-kafka [MQ_TEST_KAFKA=HOST:PORT]  tests/kafka.bats against a real Kafka-compatible
#                         cluster (without MQ_TEST_KAFKA: librdkafka's mock cluster, as make check)
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ONLY=NAME]  libFuzzer targets (clang), tests/fuzz/
#   make SAN=1 [check]    the same with ASan+UBSan, in build/san/ (never mixed with the above)
#   make FAULT=1          test builds with fault-injection switches (-DMQ_FAULT_INJECT, e.g.
#                         MQ_FAULT_KILL_AFTER_SYNC in mq-serve), in build/fault/; the
#                         programs in bin/ never carry them.  make check builds it too.
#   make demo             share/demo.sh: a tour of the programs built so far
#   make bench            build/bench/bench_log $(BENCH_ARGS) (bench-log), then
#                         share/bench/broker.sh (bench-broker; peers from make bench-deps),
#                         then share/bench/filters.sh (bench-filters: mq-bucket, mq-dedup vs cat, awk),
#                         share/bench/exec.sh (bench-exec) and share/bench/latency.sh
#                         (bench-latency: one-shot and end-to-end latency vs mosquitto, Redis, NATS)
#                         and share/bench/kafka.sh (bench-kafka: mq-pub, mq-sub over Kafka vs kcat)
#   make install [PREFIX=/usr/local] [DESTDIR=]   programs, libmq.a and its headers
#                         (include/mq/), mq.pc, man pages, bash/zsh/fish completions and
#                         share/mq/mq-serve.service; the list of what it installed
#                         goes to share/mq/install-manifest
#   make install-completions [PREFIX=] [DESTDIR=]  the completions alone
#   make uninstall [PREFIX=] [DESTDIR=]   removes what the manifest lists
#   make clean | deps
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

INSTALL ?= install
# Where make install puts things (under $(DESTDIR)); each may be given on
# the command line, e.g. LIBDIR=/usr/lib/x86_64-linux-gnu.  Plain `=`, so
# that a stray DATADIR in the environment does not move anything.
BINDIR = $(PREFIX)/bin
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
DATADIR = $(PREFIX)/share
MANDIR = $(DATADIR)/man
PKGCONFIGDIR = $(LIBDIR)/pkgconfig
COMPLDIR = $(DATADIR)/bash-completion/completions
ZSHCOMPLDIR = $(DATADIR)/zsh/site-functions
FISHCOMPLDIR = $(DATADIR)/fish/vendor_completions.d
FISHFUNCDIR = $(DATADIR)/fish/vendor_functions.d

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
# Sanitized programs run two to three times slower: the bats run's guard
# (tests/run, 900 s by default) gets twice as long.
CHECK_TIMEOUT = 1800
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

# lib/zmqload.c stands in for -lzmq in the programs that load libzmq
# only when they need it (below), so it is not in libmq.a.
LIB_SRC = $(sort $(filter-out lib/zmqload.c,$(wildcard lib/*.c)))
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

MANS = $(sort $(wildcard man/*.[1-8]))
# bash: completions/mq-*; zsh: completions/zsh/_*; fish: completions/fish/*.fish
# and the helper functions they share in completions/fish/functions/.
COMPLETIONS = $(sort $(filter-out %~ %.bak,$(wildcard completions/mq-*)))
ZSH_COMPLETIONS = $(sort $(filter-out %~ %.bak,$(wildcard completions/zsh/_*)))
FISH_COMPLETIONS = $(sort $(wildcard completions/fish/*.fish))
FISH_FUNCTIONS = $(sort $(wildcard completions/fish/functions/*.fish))

BENCH_PKGS = redis-server redis-tools mosquitto mosquitto-clients nats-server libnats-dev
DEPS_PKGS = libzmq3-dev libmsgpack-dev pkg-config libcmocka-dev bats bats-assert bats-support jq python3 sqlite3 gdb mandoc \
	bash-completion zsh fish tmux socat librdkafka-dev kcat

.PHONY: all check check-fault check-kafka fuzz deps bench-deps demo bench bench-log bench-broker bench-filters bench-exec bench-latency bench-kafka install install-completions uninstall clean FORCE
.DEFAULT_GOAL := all

# librdkafka is optional (Debian's librdkafka-dev, from make bench-deps):
# where it is, tests/kafka/mock_cluster.c becomes build/tests/mock_cluster,
# librdkafka's mock Kafka cluster on loopback for the Kafka tests.
RDKAFKA_CFLAGS = $(shell $(PKG_CONFIG) --exists rdkafka 2>/dev/null && $(PKG_CONFIG) --cflags rdkafka)
RDKAFKA_LIBS = $(shell $(PKG_CONFIG) --exists rdkafka 2>/dev/null && $(PKG_CONFIG) --libs rdkafka)
KAFKA_TOOLS = $(if $(RDKAFKA_LIBS),$(OUT_TESTS)/mock_cluster)
# lib/kafka.c takes only librdkafka's header at build time: the library
# is loaded when a program first names a kafka:// cluster.
$(OBJ)/lib/kafka.o: private EXTRA = $(if $(RDKAFKA_LIBS),-DMQ_HAVE_RDKAFKA $(RDKAFKA_CFLAGS))
# Its own flags file rebuilds it when librdkafka-dev comes or goes, so
# "install it and build mq again" is all it takes.
KAFKA_FLAGS_FILE = $(B)/flags-kafka
$(KAFKA_FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(RDKAFKA_CFLAGS) $(RDKAFKA_LIBS)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(OBJ)/lib/kafka.o: $(KAFKA_FLAGS_FILE)

all: $(OUT_LIB) $(PROGS) $(TESTS) $(BENCHES) $(FUZZERS) $(KAFKA_TOOLS)
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

# mq-pub and mq-sub load libzmq on first use (lib/zmqload.c): over one
# topic's broker they speak ZMTP themselves (lib/zmtp.c) and never load
# it, which is most of what a one-shot run would cost.  test_zmqload
# checks the loader.
LAZY_ZMQ = $(OUT_BIN)/mq-pub $(OUT_BIN)/mq-sub $(OUT_TESTS)/test_zmqload
PKG_LIBS_NO_ZMQ = $(shell $(PKG_CONFIG) --libs msgpack 2>/dev/null || echo -lmsgpackc) -lm -ldl
$(LAZY_ZMQ): $(OBJ)/lib/zmqload.o
$(LAZY_ZMQ): private PKG_LIBS = $(OBJ)/lib/zmqload.o $(PKG_LIBS_NO_ZMQ)

$(TESTS): $(OUT_TESTS)/%: $(OBJ)/tests/unit/%.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(OUT_LIB) $(CMOCKA_LIBS) $(PKG_LIBS) $(LDLIBS) -o $@

$(BENCHES): $(OUT_BENCH)/%: $(OBJ)/tests/bench/%.o $(OUT_LIB) $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(OUT_LIB) $(PKG_LIBS) $(BENCH_LIBS) $(LDLIBS) -o $@

# tests/bench/latency.c drives NATS JetStream too where libnats-dev is
# installed (make bench-deps); without it, it measures pipes alone.  Its
# own flags file rebuilds it when libnats comes or goes.
NATS_CFLAGS = $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && echo -DMQ_BENCH_NATS $$($(PKG_CONFIG) --cflags libnats))
NATS_LIBS = $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && $(PKG_CONFIG) --libs libnats)
NATS_FLAGS_FILE = $(B)/flags-nats
$(NATS_FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(NATS_CFLAGS) $(NATS_LIBS)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(OBJ)/tests/bench/latency.o: private EXTRA = $(NATS_CFLAGS)
$(OBJ)/tests/bench/latency.o: $(NATS_FLAGS_FILE)
$(OUT_BENCH)/latency: private BENCH_LIBS = $(NATS_LIBS)
$(OUT_BENCH)/latency: $(NATS_FLAGS_FILE)

$(OUT_TESTS)/mock_cluster: tests/kafka/mock_cluster.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) -D_GNU_SOURCE $(ALL_CFLAGS) $(RDKAFKA_CFLAGS) $(ALL_LDFLAGS) $< $(RDKAFKA_LIBS) $(LDLIBS) -o $@

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
		$(if $(CHECK_TIMEOUT),MQ_TEST_TIMEOUT="$${MQ_TEST_TIMEOUT:-$(CHECK_TIMEOUT)}") \
		UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1}" \
		bash tests/run

# The fault harness at full scale (tests/fault/run; make check runs it quick
# through tests/fault.bats).  MQ_FAULT_ONLY=NAME runs one script.
check-fault: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=0 FUZZ=0 FAULT=1 build/fault/bin/mq-serve
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_FAULT_BIN="$(CURDIR)/build/fault/bin" MQ_FAULT_SCALE=full bash tests/fault/run

check-kafka: deps
	@$(MAKE) --no-print-directory all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_UNIT_DIR="$(CURDIR)/$(OUT_TESTS)" MQ_TEST_KAFKA="$(MQ_TEST_KAFKA)" \
		bats tests/kafka.bats

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

bench: bench-log bench-broker bench-filters bench-exec bench-latency bench-kafka

# mq-pub and mq-sub over a Kafka cluster beside kcat (the mock cluster, or MQ_TEST_KAFKA=HOST:PORT).
bench-kafka: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_TESTS_DIR="$(CURDIR)/$(OUT_TESTS)" bash share/bench/kafka.sh

# The broker against cat, Redis Streams and mosquitto (make bench-deps installs the peers).
bench-broker: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/broker.sh

# mq-sub --exec against xargs -P (MQ_BENCH_EXEC_LINES, default 5000).
bench-exec: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/exec.sh

# One-shot publish against mosquitto_pub and redis-cli XADD; end-to-end latency
# (build/bench/latency) against mosquitto QoS 1 and NATS JetStream at 500 and
# 5000 msg/s (MQ_BENCH_LAT_SECONDS each, default 10; MQ_BENCH_LAT_LOAD=1 again
# beside a busy core); how long a refused connection takes to report.
bench-latency: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" MQ_BENCH_DIR="$(CURDIR)/$(OUT_BENCH)" bash share/bench/latency.sh

# The pipe filters against cat and awk (MQ_BENCH_FILTER_LINES, default 10000000).
bench-filters: all
	@MQ_BIN="$(CURDIR)/$(OUT_BIN)" bash share/bench/filters.sh

ifeq ($(filter $(OUT_BENCH)/bench_log,$(BENCHES)),)
$(OUT_BENCH)/bench_log:
	@echo "make bench: there is no tests/bench/bench_log.c, so no log benchmark to build and run" >&2
	@exit 1
endif

# ---- installing ---------------------------------------------------------------

# The headers a program that links libmq needs: mq.h and everything it
# includes (they include each other with quotes, so they work side by
# side in include/mq/: #include <mq/client.h>).  tests/install.bats
# compiles #include <mq/mq.h> against the installed copies only.
PUBLIC_HEADERS = mq.h batch.h bucket.h cli.h client.h consumer.h crc32c.h hash.h json.h layout.h \
	log.h outq.h record.h seen.h seqcheck.h store.h util.h wire.h
# pkg-config names of what libmq.a needs (the same the build asks for).
PC_REQUIRES = libzmq msgpack
MQ_VERSION = $(shell sed -n 's/^\#define MQ_VERSION "\(.*\)"/\1/p' lib/util.h)
# share/*.in with the paths filled in; the .pc keeps them relative to
# ${prefix} where they lie under it.
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
	-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g' \
	-e 's|@DATADIR@|$(DATADIR)|g' -e 's|@VERSION@|$(MQ_VERSION)|g' -e 's|@REQUIRES@|$(PC_REQUIRES)|g'

MAN_SECTIONS = $(sort $(subst .,,$(suffix $(MANS))))
MANIFEST = $(DATADIR)/mq/install-manifest
INST_FILES = $(addprefix $(BINDIR)/,$(notdir $(PROGS))) \
	$(LIBDIR)/libmq.a $(PKGCONFIGDIR)/mq.pc \
	$(addprefix $(INCLUDEDIR)/mq/,$(PUBLIC_HEADERS)) \
	$(foreach m,$(MANS),$(MANDIR)/man$(subst .,,$(suffix $m))/$(notdir $m)) \
	$(addprefix $(COMPLDIR)/,$(notdir $(COMPLETIONS))) \
	$(addprefix $(ZSHCOMPLDIR)/,$(notdir $(ZSH_COMPLETIONS))) \
	$(addprefix $(FISHCOMPLDIR)/,$(notdir $(FISH_COMPLETIONS))) \
	$(addprefix $(FISHFUNCDIR)/,$(notdir $(FISH_FUNCTIONS))) \
	$(DATADIR)/mq/mq-serve.service $(MANIFEST)

# Only what it installs is built (not the tests), so an up-to-date tree
# installs without compiling.  The manifest keeps the files of an earlier
# install too, so that uninstall also removes what a later tree no longer has.
install: $(OUT_LIB) $(PROGS) install-completions
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(PKGCONFIGDIR)" \
		"$(DESTDIR)$(INCLUDEDIR)/mq" "$(DESTDIR)$(DATADIR)/mq"
	$(if $(PROGS),$(INSTALL) -m 0755 $(PROGS) "$(DESTDIR)$(BINDIR)")
	$(INSTALL) -m 0644 $(OUT_LIB) "$(DESTDIR)$(LIBDIR)/libmq.a"
	$(INSTALL) -m 0644 $(addprefix lib/,$(PUBLIC_HEADERS)) "$(DESTDIR)$(INCLUDEDIR)/mq"
	$(SUBST) share/mq.pc.in >"$(DESTDIR)$(PKGCONFIGDIR)/mq.pc" && chmod 0644 "$(DESTDIR)$(PKGCONFIGDIR)/mq.pc"
	$(SUBST) share/mq-serve.service.in >"$(DESTDIR)$(DATADIR)/mq/mq-serve.service" && \
		chmod 0644 "$(DESTDIR)$(DATADIR)/mq/mq-serve.service"
	$(foreach s,$(MAN_SECTIONS),$(INSTALL) -d "$(DESTDIR)$(MANDIR)/man$s" && \
		$(INSTALL) -m 0644 $(filter %.$s,$(MANS)) "$(DESTDIR)$(MANDIR)/man$s";)
	@{ cat "$(DESTDIR)$(MANIFEST)" 2>/dev/null || true; printf '%s\n' $(INST_FILES); } | sort -u >"$(DESTDIR)$(MANIFEST).tmp" && \
		mv -f "$(DESTDIR)$(MANIFEST).tmp" "$(DESTDIR)$(MANIFEST)" && chmod 0644 "$(DESTDIR)$(MANIFEST)"

# Where bash-completion, zsh and fish look under a PREFIX (tests/completions.bats
# installs them into a temporary DESTDIR and completes from there).
install-completions:
	$(if $(COMPLETIONS),$(INSTALL) -d "$(DESTDIR)$(COMPLDIR)" && $(INSTALL) -m 0644 $(COMPLETIONS) "$(DESTDIR)$(COMPLDIR)")
	$(if $(ZSH_COMPLETIONS),$(INSTALL) -d "$(DESTDIR)$(ZSHCOMPLDIR)" && $(INSTALL) -m 0644 $(ZSH_COMPLETIONS) "$(DESTDIR)$(ZSHCOMPLDIR)")
	$(if $(FISH_COMPLETIONS),$(INSTALL) -d "$(DESTDIR)$(FISHCOMPLDIR)" && $(INSTALL) -m 0644 $(FISH_COMPLETIONS) "$(DESTDIR)$(FISHCOMPLDIR)")
	$(if $(FISH_FUNCTIONS),$(INSTALL) -d "$(DESTDIR)$(FISHFUNCDIR)" && $(INSTALL) -m 0644 $(FISH_FUNCTIONS) "$(DESTDIR)$(FISHFUNCDIR)")

# Removes every file the manifest lists (without one: what this tree
# would install), then the directories that only mq uses, if empty.
uninstall:
	@m="$(DESTDIR)$(MANIFEST)"; \
	if [ -f "$$m" ]; then files=$$(grep '^/' "$$m"); \
	else echo "make uninstall: no $$m; removing what this tree installs" >&2; files='$(INST_FILES)'; fi; \
	for f in $$files; do \
		if [ -e "$(DESTDIR)$$f" ] || [ -L "$(DESTDIR)$$f" ]; then echo "rm -f $(DESTDIR)$$f"; rm -f "$(DESTDIR)$$f"; fi; \
	done
	@rmdir "$(DESTDIR)$(INCLUDEDIR)/mq" "$(DESTDIR)$(DATADIR)/mq" 2>/dev/null || true

clean:
	rm -rf bin build lib/libmq.a
