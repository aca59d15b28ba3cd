-- The client's security properties: run ids and cursors are percent-encoded so they cannot
-- change the request, the API key stays out of errors and dumps (and is redacted from server
-- messages), header injection is refused, TLS is verified, and plain http leaves this machine
-- only with allow_insecure. Real HTTP against spec/support/fakeapi; Lua 5.4 and LuaJIT.
local blandeval = require "blandeval"
local fakeapi = require "fakeapi"
local transport = require "transport"

local api
local KEY = "test-key"

local function new_client(opts)
  local o = { api_key = KEY, retry_base_delay = 0.01, retry_max_delay = 0.05 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return blandeval.new(transport.options(o, api))
end

local counter = 0
local function uniq(prefix)
  counter = counter + 1
  return prefix .. "@s" .. counter
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "/p?a=1&b=2" -> path, list of { name, value } (raw, still encoded)
local function split(p)
  local path, query = p:match("^([^?]*)%??(.*)$")
  local params = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    params[#params + 1] = { k, v }
  end
  return path, params
end

-- Every string reachable from v: keys and values of tables, metatables, tostring() results.
local function strings_in(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then out[#out + 1] = v
  elseif t == "table" or t == "userdata" then
    if seen[v] then return out end
    seen[v] = true
    if t == "table" then
      for k, x in pairs(v) do
        strings_in(k, out, seen)
        strings_in(x, out, seen)
      end
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then strings_in(mt, out, seen) end
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" then out[#out + 1] = s end
  end
  return out
end

local function assert_no_key(v, key, what)
  for _, s in ipairs(strings_in(v)) do
    assert.is_nil(s:find(key, 1, true), what .. " shows the key: " .. s)
  end
end

---------------------------------------------------------------------------------------------

describe("blandeval client security", function()
  setup(function() api = fakeapi.start() end)
  teardown(function() if api then api.stop() end end)

  describe("escaping", function()
    local RUN = "run-a b/c?d=1&e#f%20é+x"

    it("sends a run id with ' /?#%&=+' and unicode as one percent-encoded path segment", function()
      local c = new_client()
      local items = {}
      for r in c:call_results(RUN) do items[#items + 1] = r end
      assert.are.equal(3, #items, "the fake API's 3-item run for any run-<other> id")
      for _, r in ipairs(items) do assert.are.equal(RUN, r.eval_run_id, "the server got the id unchanged") end
      local stats = api.stats(RUN)
      assert.are.equal(1, stats.requests)
      local path, params = split(stats.paths[1])
      assert.are.equal("/v1/evals/runs/run-a%20b%2Fc%3Fd%3D1%26e%23f%2520%C3%A9%2Bx/call-results", path)
      assert.are.equal(1, #params, "only limit in the query: " .. stats.paths[1])
      assert.are.equal("limit", params[1][1])
    end)

    it("escapes the run id for agent snapshots and single pages too", function()
      local run = "run-snap ?/#é"
      local c = new_client()
      local snaps = {}
      for s in c:agent_snapshots(run) do snaps[#snaps + 1] = s end
      assert.are.equal(3, #snaps)
      for _, s in ipairs(snaps) do assert.are.equal(run, s.eval_run_id) end
      local page = assert(c:call_results_page(run))
      assert.are.equal(run, page.data[1].eval_run_id)
      local stats = api.stats(run)
      assert.are.same({ "/v1/evals/runs/run-snap%20%3F%2F%23%C3%A9/agent-snapshots",
                        "/v1/evals/runs/run-snap%20%3F%2F%23%C3%A9/call-results" }, stats.paths)
    end)

    -- "." and ".." are unreserved characters, but as a whole segment they are dot segments
    -- that libcurl removes (RFC 3986 5.2.4) unless they are escaped.
    -- (refusing them as usage errors is fine too)
    it("does not let a run id of '.' or '..' move the request out of the runs path", function()
      local c = new_client()
      for _, run in ipairs { "..", ".", "../x", "./run-5", "...", ".a" } do
        local ok, page, err = pcall(function()
          local p, e = c:call_results_page(run)
          return p, e
        end)
        if ok then
          assert.is_nil(page, run)
          assert.are.equal(404, err.status, run)
          assert.are.equal("EVAL_RUN_NOT_FOUND", err.code, string.format("run id %q reached another path: %s",
            run, tostring(err.message)))
        else
          assert.truthy(tostring(page):find("run_id", 1, true), string.format("run id %q: %s", run, tostring(page)))
          assert.is_true(run == "." or run == "..", string.format("run id %q is a valid id: %s", run, tostring(page)))
        end
      end
    end)

    it("sends a cursor with '&', '=', '#', '%', '+', '/', '?' and unicode as one query value", function()
      local run = "run-cursor-escape"
      local cursor = "x&limit=1&ending_before=y#frag é%41+b/=?"
      local page, err = new_client():call_results_page(run, { starting_after = cursor, limit = 5,
                                                              include_agent_results = true })
      assert.is_nil(page)
      assert.are.equal("INVALID_CURSOR", err.code, "the server saw a cursor, not two of them: " .. tostring(err))
      assert.are.equal("Unknown cursor: " .. cursor, err.message, "the server decoded the cursor unchanged")
      local stats = api.stats(run)
      assert.are.equal(1, stats.requests)
      local _, params = split(stats.paths[1])
      local names, count = {}, 0
      for _, kv in ipairs(params) do
        names[kv[1]] = (names[kv[1]] or 0) + 1
        count = count + 1
        if kv[1] == "starting_after" then
          assert.is_nil(kv[2]:find("[^%w%-._~%%]"), "only unreserved characters and escapes: " .. kv[2])
          assert.are.equal(cursor, unescape(kv[2]))
        end
      end
      assert.are.same({ starting_after = 1, limit = 1, include_agent_results = 1 }, names,
        "exactly one starting_after and no extra parameters: " .. stats.paths[1])
      assert.are.equal(3, count)
    end)

    it("escapes an ending_before cursor the same way", function()
      local run = "run-cursor-back"
      local cursor = "a&starting_after=b"
      local _, err = new_client():call_results_page(run, { ending_before = cursor })
      assert.are.equal("INVALID_CURSOR", err.code, tostring(err))
      assert.are.equal("Unknown cursor: " .. cursor, err.message)
      local _, params = split(api.stats(run).paths[1])
      assert.are.equal(1, #params, api.stats(run).paths[1])
      assert.are.equal("ending_before", params[1][1])
    end)

    it("sends a cursor holding NUL whole (or refuses it), never cut at the NUL", function()
      local run = "run-cursor-nul"
      local cursor = "nope\0&ending_before=x"
      local ok, page, err = pcall(function()
        local p, e = new_client():call_results_page(run, { starting_after = cursor })
        return p, e
      end)
      if not ok then                              -- a usage error is an acceptable answer
        assert.truthy(tostring(page):find("starting_after", 1, true), tostring(page))
        return
      end
      assert.is_nil(page)
      assert.is_table(err)
      local stats = api.stats(run)
      assert.are.equal(1, stats.requests)
      local _, params = split(stats.paths[1])
      assert.are.equal(1, #params, stats.paths[1])
      assert.are.equal(string.format("%q", cursor), string.format("%q", unescape(params[1][2])),
        "the cursor that reached the server: " .. stats.paths[1])
    end)
  end)

  describe("the API key", function()
    it("is sent as the authorization header, raw or in the Bearer form as given", function()
      local run = "run-auth-forms"
      assert(new_client():call_results_page(run))
      assert(new_client({ api_key = "Bearer " .. KEY }):call_results_page(run))
      assert.are.same({ KEY, "Bearer " .. KEY }, api.stats(run).auth)
    end)

    it("never shows in tostring(client), the client table, or error values", function()
      local secret = "sk-secret-ABC123"
      local c = new_client({ api_key = secret, max_retries = 0 })
      assert.is_nil(tostring(c):find(secret, 1, true), tostring(c))
      assert_no_key(c, secret, "the client")
      local page, err = c:call_results_page("run-5")            -- 401 with this key
      assert.is_nil(page)
      assert.are.equal(401, err.status)
      assert_no_key(err, secret, "a 401 error")
      assert.is_nil(tostring(err):find(secret, 1, true))
      local ok, raised = pcall(function()
        for _ in c:call_results("nope") do end
      end)
      assert.is_false(ok)
      assert_no_key(raised, secret, "a raised error")
      c:close()
      assert_no_key(c, secret, "a closed client")
    end)

    it("is redacted from a server message that echoes it", function()
      local run = "run-echo-raw"
      -- the fake API echoes an unknown cursor in its message
      local _, err = new_client():call_results_page(run, { starting_after = "xx " .. KEY .. " yy" })
      assert.are.equal("INVALID_CURSOR", err.code)
      assert.are.equal("Unknown cursor: xx [REDACTED] yy", err.message)
      assert.is_nil(tostring(err):find(KEY, 1, true), tostring(err))
      assert_no_key(err, KEY, "the error value")
    end)

    it("is redacted when given in the Bearer form and the server echoes the bare key", function()
      local run = "run-echo-bearer"
      local _, err = new_client({ api_key = "Bearer " .. KEY }):call_results_page(run, { starting_after = KEY })
      assert.are.equal("INVALID_CURSOR", err.code, tostring(err))
      assert.is_nil(err.message:find(KEY, 1, true), "the bare key leaked: " .. err.message)
      assert.is_nil(tostring(err):find(KEY, 1, true), tostring(err))
    end)

    for _, field in ipairs { "api_key", "user_agent" } do
      it("refuses CR, LF and NUL in " .. field .. " without echoing the value", function()
        for _, bad in ipairs { "sek\rret", "sek\nret", "sek\0ret", "sek\r\nX-Injected: 1" } do
          local opts = { api_key = KEY, base_url = api.base_url }
          opts[field] = bad
          local ok, err = pcall(blandeval.new, opts)
          local what = field .. " = " .. string.format("%q", bad)
          assert.is_false(ok, what .. " must be refused")
          assert.truthy(err:find(field, 1, true), what .. ": " .. err)
          assert.truthy(err:find("CR, LF or NUL", 1, true), what .. ": " .. err)
          assert.is_nil(err:find("sek", 1, true), what .. ": the value is echoed: " .. err)
        end
      end)
    end
  end)

  describe("TLS", function()
    it("verifies the server with cainfo and reuses one TLS connection #curl", function()
      local c = new_client({ base_url = api.tls_url, cainfo = api.cert, page_size = 10 })
      local n = 0
      for _ in c:call_results("run-60") do n = n + 1 end
      assert.are.equal(60, n)
      local stats = api.stats("run-60")
      assert.are.equal(6, stats.requests)
      assert.are.equal(1, stats.connections, "one TLS connection for the iteration")
    end)

    it("verifies with capath, a directory of hashed CA certificates #curl", function()
      local dir = api.dir .. "/capath"
      local p = assert(io.popen("mkdir -p '" .. dir .. "' && cp '" .. api.cert .. "' '" .. dir
        .. "/ca.pem' && openssl rehash '" .. dir .. "' 2>&1 && echo done"))
      local out = p:read("*a")
      p:close()
      assert.truthy(out:find("done", 1, true), "openssl rehash: " .. out)
      local page, err = new_client({ base_url = api.tls_url, capath = dir }):call_results_page("run-5")
      assert.is_not_nil(page, "capath: " .. tostring(err))
      assert.are.equal(5, #page.data)
    end)

    it("accepts the certificate for the name 'localhost' too #curl", function()
      local url = api.tls_url:gsub("127%.0%.0%.1", "localhost")
      local page, err = new_client({ base_url = url, cainfo = api.cert }):call_results_page("run-5")
      assert.is_not_nil(page, tostring(err))
    end)

    it("fails verification without the CA: network error, not retried #curl", function()
      local run = "run-tls-unverified"
      local c = new_client({ base_url = api.tls_url, max_retries = 3 })
      local page, err = c:call_results_page(run)
      assert.is_nil(page)
      assert.are.equal("network", err.kind)
      assert.is_true(err.curl == "PEER_FAILED_VERIFICATION" or err.curl == "SSL_CACERT"
        or err.curl == "SSL_CONNECT_ERROR", "curl: " .. tostring(err.curl))
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, api.stats(run).requests, "no request got through")
      -- an iteration raises it
      local ok, raised = pcall(function() for _ in c:call_results(run) do end end)
      assert.is_false(ok)
      assert.are.equal(err.curl, raised.curl)
    end)

    it("checks the host name: a certificate for 127.0.0.1 does not pass for ::ffff:127.0.0.1 #curl", function()
      local port = api.tls_url:match(":(%d+)$")
      local probe = io.popen("curl -sk -o /dev/null -w '%{http_code}' --max-time 2 'https://[::ffff:127.0.0.1]:"
        .. port .. "/_stats?run=x'")
      local code = probe:read("*a")
      probe:close()
      if code ~= "200" then
        pending("this machine cannot reach 127.0.0.1 as ::ffff:127.0.0.1")
        return
      end
      local c = new_client({ base_url = "https://[::ffff:127.0.0.1]:" .. port, cainfo = api.cert })
      local page, err = c:call_results_page("run-tls-host")
      assert.is_nil(page)
      assert.are.equal("network", err.kind)
      assert.are.equal("PEER_FAILED_VERIFICATION", err.curl)
      assert.is_false(err.retryable)
      assert.are.equal(0, api.stats("run-tls-host").requests)
    end)

    it("reports a CA file that cannot be read, without retrying #curl", function()
      local c = new_client({ base_url = api.tls_url, cainfo = api.dir .. "/no-such-ca.pem", max_retries = 3 })
      local page, err = c:call_results_page("run-5")
      assert.is_nil(page)
      assert.are.equal("network", err.kind)
      assert.are.equal("SSL_CACERT_BADFILE", err.curl)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
    end)
  end)

  describe("plain http", function()
    it("is allowed to this machine: 127.0.0.0/8, localhost and [::1] #curl", function()
      for _, url in ipairs { "http://127.0.0.1:1", "http://127.200.3.4", "http://localhost:8080/",
                             "http://[::1]:9", "http://user@127.0.0.1:1" } do
        local ok, c = pcall(blandeval.new, { api_key = KEY, base_url = url })
        assert.is_true(ok, url .. " must be allowed: " .. tostring(c))
        c:close()
      end
      local run = "run-plain-local"
      assert(new_client():call_results_page(run))      -- and it works: api.base_url is http
      assert.are.equal(1, api.stats(run).requests)
    end)

    it("to another host is refused at new() unless allow_insecure = true #curl", function()
      for _, url in ipairs { "http://example.invalid", "http://example.invalid:80/v1",
                             "http://127.0.0.1.example.invalid", "http://localhost.example.invalid",
                             "http://127.0.0.1@example.invalid", "http://[::2]", "http://10.0.0.1:8080" } do
        local ok, err = pcall(blandeval.new, { api_key = KEY, base_url = url })
        assert.is_false(ok, url .. " must be refused")
        assert.truthy(err:find("bad argument #1 to 'new'", 1, true), url .. ": " .. err)
        assert.truthy(err:find("allow_insecure", 1, true), url .. ": the error says how: " .. err)
        assert.is_nil(err:find(KEY, 1, true))
        local ok2, c = pcall(blandeval.new, { api_key = KEY, base_url = url, allow_insecure = true })
        assert.is_true(ok2, url .. " with allow_insecure: " .. tostring(c))
        assert.matches("^blandeval%.client %(", tostring(c))
        c:close()
      end
    end)

    it("tostring(client) shows no user:password of the base URL #curl", function()
      local c = blandeval.new { api_key = KEY, base_url = "https://user:secretpw@example.invalid/x" }
      assert.are.equal("blandeval.client (https://example.invalid/x)", tostring(c))
    end)

    it("https to any host is accepted without allow_insecure #curl", function()
      local c = blandeval.new { api_key = KEY, base_url = "https://example.invalid" }
      assert.are.equal("blandeval.client (https://example.invalid)", tostring(c))
      c:close()
    end)
  end)
end)
