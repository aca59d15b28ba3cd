# blandeval: build the C core for Lua 5.4 (default) or LuaJIT 2.1 (LUA=luajit),
# run the specs under both, the demo and the benchmarks.
#
#   make                 build build/lua5.4/blandeval/core.so
#   make LUA=luajit      build build/luajit/blandeval/core.so (Lua 5.1 ABI)
#   make test            install missing packages, build both, run busted under both,
#                        and the client specs inside nginx (the ngx transport)
#   make demo            examples/failed_calls.lua against the fake API (or the real
#                        one, with BLAND_API_KEY and RUN_ID set)
#   make bench           bench/run.sh: every figure against its anchor (P1-P5), one table
#   make valgrind        every spec that loads the C core, under valgrind (Lua 5.4)
#   make sanitize        the whole suite (Lua 5.4) against an ASan + UBSan build (build/sanitize/)
#   make gc-torture      the specs that drive the core, with the collector run before each
#                        allocating call of the core: Lua 5.4 under ASan + UBSan, and LuaJIT
#   make fuzz            libFuzzer targets (spec/fuzz/, clang + ASan/UBSan), each run for
#                        FUZZ_SECONDS (default 135: about 10 minutes in all; 10 for a smoke run)

LUA      ?= lua5.4
CC       ?= cc
CFLAGS   ?= -O2 -g
PKG      ?= pkg-config

ifeq ($(LUA),luajit)
LUA_PC   := luajit
else ifeq ($(LUA),lua5.4)
LUA_PC   := lua5.4
else
$(error LUA must be lua5.4 or luajit, not '$(LUA)')
endif

BUILD    := build/$(LUA)
MODULE   := $(BUILD)/blandeval/core.so
SRCS     := $(wildcard csrc/*.c)
HDRS     := $(wildcard csrc/*.h)
OBJS     := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRCS))

WARN     := -std=c99 -pedantic -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wundef -Wvla
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden \
             $(shell $(PKG) --cflags $(LUA_PC)) $(shell $(PKG) --cflags libcurl)
# The module must not link liblua: the host interpreter (lua5.4, luajit, nginx)
# provides the Lua API.
LIBS     := $(shell $(PKG) --libs libcurl)

INTERPRETERS := lua5.4 luajit

.PHONY: all test demo bench valgrind sanitize gc-torture fuzz deps clean

all: $(MODULE)

$(BUILD)/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

deps:
	@sh spec/support/deps.sh

test: deps
	@for l in $(INTERPRETERS); do $(MAKE) --no-print-directory LUA=$$l all || exit 1; done
	@sh spec/support/run-specs.sh $(INTERPRETERS) nginx

demo: deps
	@$(MAKE) --no-print-directory -s all
	@sh examples/demo.sh $(LUA) $(BUILD)

bench: deps
	@EXTRA_PACKAGES="python3-requests lua-socket" sh spec/support/deps.sh
	@for l in $(INTERPRETERS); do $(MAKE) --no-print-directory LUA=$$l all || exit 1; done
	@sh bench/run.sh

valgrind: deps
	@$(MAKE) --no-print-directory LUA=lua5.4 all
	@sh spec/support/valgrind.sh

sanitize: deps
	@sh spec/support/sanitize.sh

gc-torture: deps
	@sh spec/support/gc_torture.sh

# libFuzzer targets: spec/fuzz/<target>.c with the core's sources and liblua5.4,
# built by clang with ASan and UBSan (any UB aborts) into build/fuzz/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 135
FUZZ_TARGETS := decode pager_response url decode_diff
FUZZ_BINS    := $(addprefix build/fuzz/,$(FUZZ_TARGETS))
FUZZ_OBJS    := $(patsubst csrc/%.c,build/fuzz/obj/%.o,$(SRCS))
FUZZ_CFLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined $(WARN) \
                $(shell $(PKG) --cflags lua5.4) $(shell $(PKG) --cflags libcurl)

build/fuzz/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fvisibility=hidden -c $< -o $@

$(FUZZ_BINS): build/fuzz/%: spec/fuzz/%.c spec/fuzz/harness.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer \
	    -DBE_FUZZ_CMOD='"$(shell $(PKG) --variable=INSTALL_CMOD lua5.4)"' -o $@ $< $(FUZZ_OBJS) \
	    $(shell $(PKG) --libs lua5.4) $(LIBS) -ldl -lpthread -lm

fuzz: deps
	@EXTRA_PACKAGES="clang libclang-rt-14-dev" sh spec/support/deps.sh
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@sh spec/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build
