-- Chained refresh-token rotation: a FIFO of refresh tokens (read from CONFIG.tokens_in).
-- request() takes the oldest; response() pushes the rotated token that came back. done()
-- writes what is left (the live tokens) to CONFIG.tokens_out for the next round.
counts = {}
extra = {}
queue = {}
head = 1
tail = 0
for line in io.lines(CONFIG.tokens_in) do
  if #line > 0 then
    tail = tail + 1
    queue[tail] = line
  end
end
local prefix = "grant_type=refresh_token&client_id=" .. CONFIG.client_id .. "&refresh_token="
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  local token = "queue-empty"
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  else
    extra.queue_empty = (extra.queue_empty or 0) + 1
  end
  return wrk.format("POST", CONFIG.path, headers, prefix .. token)
end

function response(status, hdrs, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 200 then
    local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      tail = tail + 1
      queue[tail] = token
    else
      extra.no_token = (extra.no_token or 0) + 1
    end
  elseif (status == 503 or status == 429) and (hdrs["Retry-After"] or hdrs["retry-after"]) then
    extra["retry_after_" .. status] = (extra["retry_after_" .. status] or 0) + 1
  end
end

function done_hook(threads)
  local out = assert(io.open(CONFIG.tokens_out, "w"))
  for _, thread in ipairs(threads) do
    local q, h, t = thread:get("queue"), thread:get("head"), thread:get("tail")
    for i = h, t do
      if q[i] then
        out:write(q[i], "\n")
      end
    end
  end
  out:close()
end
