-- Dedupe + store + enqueue a batch of deliveries in one atomic step (the webhook ack path).
-- ARGV: now_ms, dedupe_ttl_s, retention_min_id, n, then per delivery 5 values:
--   endpoint, delivery_id, kind ("event" | "quarantine"), headers_json, body
-- Returns one integer per delivery (1 stored, 0 duplicate) and, last, 1 when a drain must be scheduled.
local ttl = ARGV[2]
local minid = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local new_events = 0
for i = 0, n - 1 do
  local endpoint, id, kind, headers, body = unpack(ARGV, 5 + i * 5, 9 + i * 5)
  if redis.call('SET', K.dedupe(endpoint, id), '1', 'NX', 'EX', ttl) then
    local stream = (kind == 'event') and K.INBOX or K.QUARANTINE
    redis.call('XADD', stream, 'MINID', '~', minid, '*',
               'endpoint', endpoint, 'delivery_id', id, 'headers', headers, 'body', body, 'received_at', NOW)
    redis.call('HINCRBY', K.DELIVERY_STATS, endpoint .. ':' .. (kind == 'event' and 'accepted' or 'quarantined'), 1)
    if kind == 'event' then new_events = new_events + 1 end
    out[#out + 1] = 1
  else
    redis.call('HINCRBY', K.DELIVERY_STATS, endpoint .. ':duplicate', 1)
    redis.call('LPUSH', K.DUPLICATES, cjson.encode({endpoint = endpoint, delivery_id = id, at = NOW}))
    redis.call('LTRIM', K.DUPLICATES, 0, D.DUPLICATES_CAP - 1)
    out[#out + 1] = 0
  end
end
local schedule = 0
if new_events > 0 and redis.call('SET', K.DRAIN_FLAG, '1', 'NX', 'EX', D.DRAIN_FLAG_TTL_S) then schedule = 1 end
out[#out + 1] = schedule
return out
