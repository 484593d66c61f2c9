-- Dedupe + store + enqueue a batch of deliveries in one atomic step (the webhook ack path).
-- ARGV: prefix, now_ms, dedupe_ttl_s, retention_min_id, n, then per delivery 5 values:
--   endpoint, delivery_id, kind ("event" | "quarantine"), headers_json, body
-- Returns one integer per delivery (1 stored, 0 duplicate) and, last, 1 when a drain must be scheduled.
local ttl = ARGV[3]
local minid = ARGV[4]
local n = tonumber(ARGV[5])
local out = {}
local new_events = 0
for i = 0, n - 1 do
  local base = 6 + i * 5
  local endpoint, id, kind = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  if redis.call('SET', P .. 'dedupe:' .. endpoint .. ':' .. id, '1', 'NX', 'EX', ttl) then
    local stream = (kind == 'event') and (P .. 'inbox') or (P .. 'quarantine')
    redis.call('XADD', stream, 'MINID', '~', minid, '*',
               'endpoint', endpoint, 'delivery_id', id, 'headers', ARGV[base + 3], 'body', ARGV[base + 4],
               'received_at', NOW)
    redis.call('HINCRBY', P .. 'stats:deliveries', endpoint .. ':' .. (kind == 'event' and 'accepted' or 'quarantined'), 1)
    if kind == 'event' then new_events = new_events + 1 end
    out[#out + 1] = 1
  else
    redis.call('HINCRBY', P .. 'stats:deliveries', endpoint .. ':duplicate', 1)
    redis.call('LPUSH', P .. 'duplicates:recent', cjson.encode({endpoint = endpoint, delivery_id = id, at = NOW}))
    redis.call('LTRIM', P .. 'duplicates:recent', 0, 199)
    out[#out + 1] = 0
  end
end
local schedule = 0
if new_events > 0 and redis.call('SET', P .. 'drain:scheduled', '1', 'NX', 'EX', 60) then schedule = 1 end
out[#out + 1] = schedule
return out
