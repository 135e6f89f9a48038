-- Count responses by status (static requests: method, body and headers come from CONFIG).
counts = {}
extra = {}
if CONFIG.method then
  wrk.method = CONFIG.method
end
if CONFIG.body then
  wrk.body = CONFIG.body
end
for name, value in pairs(CONFIG.headers or {}) do
  wrk.headers[name] = value
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if (status == 503 or status == 429) and (headers["Retry-After"] or headers["retry-after"]) then
    extra["retry_after_" .. status] = (extra["retry_after_" .. status] or 0) + 1
  end
end
