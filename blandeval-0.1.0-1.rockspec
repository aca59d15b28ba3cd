rockspec_format = "3.0"
package = "blandeval"
version = "0.1.0-1"
source = {
  url = "git+file://./blandeval",
}
description = {
  summary = "Read the results of Bland AI eval runs from Lua",
  detailed = [[
A Lua module with a C core: libcurl does the HTTP, a one-pass C converter turns
JSON into Lua tables, and iterators follow the API's cursors by themselves.
Runs in Lua 5.4 and in LuaJIT 2.1 (OpenResty).
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
-- Debian keeps curl/curl.h under the multiarch include directory, where the
-- compiler finds it but LuaRocks' header check does not look: check the library.
external_dependencies = {
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["blandeval.core"] = {
      sources = { "csrc/core.c", "csrc/decode.c", "csrc/errors.c", "csrc/pager.c", "csrc/retry.c",
                  "csrc/transport.c", "csrc/client.c", "csrc/batch.c" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["blandeval"] = "lua/blandeval/init.lua",
    ["blandeval.client"] = "lua/blandeval/client.lua",
    ["blandeval.ngx"] = "lua/blandeval/ngx.lua",
    ["blandeval.query"] = "lua/blandeval/query.lua",
    ["blandeval.analysis"] = "lua/blandeval/analysis.lua",
    ["blandeval.cli"] = "lua/blandeval/cli.lua",
    ["blandeval.output"] = "lua/blandeval/output.lua",
    ["blandeval.many"] = "lua/blandeval/many.lua",
  },
  install = {
    bin = { blandeval = "bin/blandeval" },
  },
}
