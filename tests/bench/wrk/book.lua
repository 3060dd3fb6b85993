-- wrk script: each request once, from a prepared file (the bench writes it).
--   wrk -t T -c C -d 10s --latency -s book.lua URL -- FILE T [POST|GET]
-- POST: each line of FILE is one JSON body (a distinct slot and customer phone); line i goes to
-- thread i mod T, so no two requests share a slot. GET: each line is a path, cycled through.
-- A POST thread out of bodies sends GET /health/ready (counted apart) and stops.
-- Every answer's status is counted; done() prints "statuses: 201=N ..." for the bench to parse.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  method = args[3] or "POST"
  requests_ = {}
  next_ = 1
  statuses = {}
  exhausted = 0
  local n = 0
  for line in io.lines(file) do
    if line ~= "" then
      if method == "GET" then
        table.insert(requests_, wrk.format("GET", line))
      elseif n % nthreads == id then
        table.insert(requests_, wrk.format("POST", nil, nil, line))
      end
      n = n + 1
    end
  end
  filler = wrk.format("GET", "/health/ready", {})
end

function request()
  local req = requests_[next_]
  if req == nil then
    if method == "GET" then
      next_ = 1
      return requests_[1]
    end
    exhausted = exhausted + 1
    wrk.thread:stop()
    return filler
  end
  next_ = next_ + 1
  return req
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  local fillers = 0
  for _, thread in ipairs(threads) do
    for key, value in pairs(thread:get("statuses")) do
      totals[key] = (totals[key] or 0) + value
    end
    fillers = fillers + thread:get("exhausted")
  end
  local parts = {}
  for key, value in pairs(totals) do
    table.insert(parts, key .. "=" .. value)
  end
  table.sort(parts)
  io.write("statuses: " .. table.concat(parts, " ") .. "\n")
  io.write("out of bodies: " .. fillers .. "\n")
end
