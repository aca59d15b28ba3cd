-- blandeval.many: one iteration over several runs (or several endpoints) whose requests are
-- in flight together, at most `concurrency` at once, on the client's connections. Each
-- stream is paged by its own pager (blandeval.core.pager) with its own retries; items come
-- in the order their pages arrive, each with its stream's tag. Per stream at most one page
-- is held and one is in flight, so memory grows with the number of streams, not their size.
--
-- The transport gives a batch (client._c:_batch(n): libcurl easy handles on the client's
-- multi handle, or light threads of subrequests under nginx) with start(i, pager),
-- wait(seconds) -> slot | nil, response(i, pager, seen) -> page | nil, err, retry_after,
-- abort(i) and close().
local core = require "blandeval.core"

local random, min, max, huge = math.random, math.min, math.max, math.huge
local error, setmetatable = error, setmetatable

local M = {}

local MAX_EMPTY_PAGES = 16

local function clock()
  if ngx then ngx.update_time() return ngx.now() end
  return core.monotonic()
end

local Many = {}
Many.__index = Many

local function release(it, state)
  if it.batch then it.batch:close() end
  it.state, it.batch, it.streams, it.slot_stream, it.queue = state, nil, nil, nil, nil
  it.items, it.page = nil, nil
end

function Many:close()
  if self.state ~= "closed" then release(self, "closed") end
end
Many.__close = Many.close

-- A call into the batch that raised (the client was closed, out of memory): the iteration
-- ends failed with that error, which it raises again if called again.
local function batch_call(it, method, ...)
  local ok, a, b, c = pcall(it.batch[method], it.batch, ...)
  if ok then return a, b, c end
  release(it, "failed")
  it.err = a
  error(a, 0)
end

-- Raises err for stream s with its tag and the cursor to resume it from, and keeps it.
local function fail(it, s, err)
  local cursor, backward = s.pager:cursor()
  if cursor then err[backward and "ending_before" or "starting_after"] = cursor end
  err.tag, err.run_id = s.tag, s.run_id
  release(it, "failed")
  it.err = err
  error(err, 0)
end

-- What is left of the deadline (policy.deadline) of stream s's page, or nil: none.
local function left_of(it, s, now)
  local deadline = it.policy.deadline
  return deadline and max(0, s.page_at + deadline - now) or nil
end

-- Starts requests on the free slots for the streams that may have one: not done, nothing in
-- flight, no page waiting in the queue, past their retry time. Round robin from it.next.
-- An attempt takes at most what is left of its page's deadline.
local function fill(it, now)
  local streams, n = it.streams, #it.streams
  for _ = 1, n do
    local slot = it.free[#it.free]
    if not slot then return end
    local s = streams[it.next]
    it.next = it.next % n + 1
    if not s.done and not s.slot and not s.queued and s.ready_at <= now then
      it.free[#it.free] = nil
      s.page_at = s.page_at or now
      if not batch_call(it, "start", slot, s.pager, left_of(it, s, now)) then
        it.free[#it.free + 1] = slot
        fail(it, s, core.error { kind = "network", message = "cannot start the transfer (out of memory)" })
      end
      s.slot, it.slot_stream[slot] = slot, s
      it.in_flight = it.in_flight + 1
    end
  end
end

-- The answer in slot i: a page goes to the queue, a retryable failure waits its turn.
local function take(it, i)
  local s = it.slot_stream[i]
  local page, err, retry_after = batch_call(it, "response", i, s.pager, s.seen)
  it.slot_stream[i], s.slot = nil, nil
  it.free[#it.free + 1] = i
  it.in_flight = it.in_flight - 1
  if page then
    s.attempt, s.page_at = 0, false
    s.done = s.pager:done()
    if #page.data == 0 then
      s.empty = s.empty + 1
      if s.empty > MAX_EMPTY_PAGES and not s.done then
        fail(it, s, core.error { kind = "protocol", message = "too many empty pages in a row" })
      end
    else
      s.empty, s.queued = 0, true
      it.qtail = it.qtail + 1
      it.queue[it.qtail] = { s, page }
    end
    if s.done then it.live = it.live - 1 end
    return
  end
  s.attempt = s.attempt + 1
  err.attempts = s.attempt
  if not err.retryable then fail(it, s, err) end
  local left = left_of(it, s, clock())
  local wait = core.retry_wait(it.policy, s.attempt, retry_after, left, random())
  if not wait then
    if left and s.attempt <= it.policy.max_retries then err.deadline_exceeded = true end
    fail(it, s, err)
  end
  s.ready_at = clock() + wait
end

local function step(it)
  local state = it.state
  if state == "closed" then error("blandeval: the iterator is closed", 2) end
  if state == "done" then return nil end
  if state == "failed" then error(it.err, 0) end
  -- an error that escaped the last call midway (out of memory) may have lost a page or a slot
  if it.busy then
    release(it, "failed")
    it.err = "blandeval: the iteration was interrupted by an error (out of memory) and cannot go on"
    error(it.err, 0)
  end
  it.busy = true
  while true do
    if it.idx < it.n then
      it.idx = it.idx + 1
      local s = it.stream
      it.busy = false
      return it.items[s.backward and it.n - it.idx + 1 or it.idx], s.tag, it.page
    end
    local q = it.queue
    if q[it.qhead] then                        -- the next page that came
      local s, page = q[it.qhead][1], q[it.qhead][2]
      q[it.qhead] = nil
      it.qhead = it.qhead + 1
      s.queued = false
      it.stream, it.page, it.items, it.n, it.idx = s, page, page.data, #page.data, 0
      fill(it, clock())                        -- its next page travels while this one is read
    elseif it.live == 0 then
      release(it, "done")
      return nil
    else
      it.stream, it.page, it.items, it.n, it.idx = nil, nil, nil, 0, 0
      local now = clock()
      fill(it, now)
      local wake = huge
      if it.in_flight == 0 then                -- every stream waits to retry
        for _, s in ipairs(it.streams) do
          if not s.done and s.ready_at < wake then wake = s.ready_at end
        end
      else
        for _, s in ipairs(it.streams) do
          if not s.done and not s.slot and s.ready_at > now and s.ready_at < wake then wake = s.ready_at end
        end
      end
      local i = batch_call(it, "wait", wake == huge and 1 or min(1, wake - now > 0 and wake - now or 0))
      if i then take(it, i) end
    end
  end
end

--- M.iter(client, requests, opts) -> step, state, nil, state
-- requests[i] = { endpoint =, run_id =, params =, tag = } (checked by the caller);
-- opts.concurrency: requests in flight at once.
function M.iter(client, requests, opts)
  local streams = {}
  for i, r in ipairs(requests) do
    local pager = core.pager(r.endpoint, r.run_id, r.params, client.keep_nulls)
    streams[i] = { tag = r.tag, run_id = r.run_id, pager = pager, seen = {}, attempt = 0, empty = 0,
      ready_at = 0, page_at = false, backward = select(2, pager:cursor()) }
  end
  local k = min(opts.concurrency or 4, #streams)
  local it = setmetatable({
    state = #streams == 0 and "done" or "open", streams = streams, slot_stream = {}, free = {},
    queue = {}, qhead = 1, qtail = 0, next = 1, in_flight = 0, live = #streams, idx = 0, n = 0,
    policy = client.policy,
    busy = false, err = false,   -- present from the start: setting them later allocates nothing
  }, Many)
  if #streams > 0 then
    it.batch = client._c:_batch(k)
    for i = k, 1, -1 do it.free[#it.free + 1] = i end
  end
  return step, it, nil, it
end

return M
