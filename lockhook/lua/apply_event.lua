-- Process one parsed event exactly once: event log, lock state, correlation, resolution, outbox.
-- ARGV: prefix, now_ms, event_json (normalized by lockhook.processing.events), processed_ttl_s, park_ttl_s,
--       window_ms, device_log_cap
local ev = cjson.decode(ARGV[3])
if not redis.call('SET', P .. 'processed:' .. ev.key, '1', 'NX', 'EX', ARGV[4]) then
  return cjson.encode({status = 'duplicate'})
end
local result = {status = 'applied'}
redis.call('HINCRBY', P .. 'stats:events', ev.type, 1)

-- correlation, first match wins (the four rules in the README's "How it works")
local cid = nil
if ev.result then
  local function lookup(kind, value)
    if cid or not value then return end
    local v = redis.call('GET', P .. 'idx:' .. kind .. ':' .. value)
    if v then cid = v end
  end
  lookup('action_id', ev.action_id)
  lookup('custom_id', ev.custom_id)
  lookup('action_attempt_id', ev.action_attempt_id)
  if not cid and ev.rule4 and ev.device_id and ev.action then
    local at = tonumber(ev.occurred)
    local hit = redis.call('ZRANGEBYSCORE', P .. 'pending:' .. ev.device_id .. ':' .. ev.action,
                           string.format('%.0f', at - tonumber(ARGV[6])), string.format('%.0f', at + 30000),
                           'LIMIT', 0, 1)
    cid = hit[1]
  end
end

local device = ev.device_id
if cid then
  if not device then device = redis.call('HGET', P .. 'cmd:' .. cid, 'device_id') or nil end
  local outcome, anom = apply_result(cid, ev)
  result.command_id = cid
  result.outcome = outcome
  result.anomaly = anom
elseif ev.result and (ev.action_id or ev.custom_id or ev.action_attempt_id) then
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    if ev[kind] then
      local key = P .. 'parked:' .. kind .. ':' .. ev[kind]
      redis.call('RPUSH', key, ARGV[3])
      redis.call('EXPIRE', key, ARGV[5])
    end
  end
  result.parked = true
end

-- lock state: one compare-and-set on occurred_at; older events are logged, not applied
if ev.lock_state and device then
  local lk = P .. 'lock:' .. device
  local cur = redis.call('HMGET', lk, 'occurred_at', 'locked')
  if cur[1] and tonumber(cur[1]) > tonumber(ev.occurred) then
    result.lock = 'stale'
    result.anomaly = result.anomaly or anomaly({kind = 'stale_lock_event', device_id = device, event = ev.key,
                                               event_occurred_at = ev.occurred, stored_occurred_at = cur[1]})
  else
    local locked = (ev.lock_state == 'locked') and '1' or '0'
    redis.call('HDEL', lk, 'method', 'performed_via')
    redis.call('HSET', lk, 'device_id', device, 'locked', locked, 'occurred_at', ev.occurred,
               'source_event', ev.key, 'event_type', ev.type, 'updated_at', NOW)
    if ev.method then redis.call('HSET', lk, 'method', ev.method) end
    if ev.performed_via then redis.call('HSET', lk, 'performed_via', ev.performed_via) end
    result.lock = 'applied'
    if cur[2] ~= locked then
      redis.call('XADD', P .. 'outbox', '*', 'type', 'lock.state_changed', 'device_id', device,
                 'event', ev.key, 'at', NOW)
      result.lock_changed = true
    end
  end
end

-- logs for the API and dashboard
local summary = ev.summary or {}
summary.command_id = cid
summary.lock = result.lock
summary.parked = result.parked
local line = cjson.encode(summary)
if device then
  redis.call('LPUSH', P .. 'device:' .. device .. ':events', line)
  redis.call('LTRIM', P .. 'device:' .. device .. ':events', 0, tonumber(ARGV[7]) - 1)
  redis.call('ZADD', P .. 'devices', NOW, device)
end
redis.call('LPUSH', P .. 'events:recent', line)
redis.call('LTRIM', P .. 'events:recent', 0, 999)
return cjson.encode(result)
