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
#   make valgrind        the decode and client specs under valgrind (Lua 5.4)

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

.PHONY: all test demo bench valgrind deps clean

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

clean:
	rm -rf build
