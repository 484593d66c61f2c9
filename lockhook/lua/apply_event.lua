-- Process one parsed event exactly once: event log, lock state, correlation, resolution, outbox.
-- ARGV: now_ms, event_json (a lockhook.processing.events.NormalizedEvent)
local ev = cjson.decode(ARGV[2])
if not redis.call('SET', K.processed(ev.key), '1', 'NX', 'EX', D.PROCESSED_TTL_S) then
  return cjson.encode({status = 'duplicate'})
end
local result = {status = 'applied'}
redis.call('HINCRBY', K.EVENT_STATS, ev.type, 1)

-- correlation, first match wins (the four rules in the README's "How it works")
local cid = nil
if ev.is_action_result then
  local function lookup(kind, value)
    if cid or not value then return end
    local v = redis.call('GET', K.id_index(kind, value))
    if v then cid = v end
  end
  lookup('action_id', ev.action_id)
  lookup('custom_id', ev.custom_id)
  lookup('action_attempt_id', ev.action_attempt_id)
  if not cid and ev.match_by_device_window and ev.device_id and ev.action then
    local at = tonumber(ev.occurred)
    local hit = redis.call('ZRANGEBYSCORE', K.pending_commands(ev.device_id, ev.action),
                           string.format('%.0f', at - D.CORRELATION_WINDOW_MS),
                           string.format('%.0f', at + D.CORRELATION_CLOCK_SKEW_MS), 'LIMIT', 0, 1)
    cid = hit[1]
  end
end

local device = ev.device_id
if cid then
  if not device then device = redis.call('HGET', K.command(cid), 'device_id') or nil end
  local outcome, anom = apply_result(cid, ev)
  result.command_id = cid
  result.outcome = outcome
  result.anomaly = anom
elseif ev.is_action_result and (ev.action_id or ev.custom_id or ev.action_attempt_id) then
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    if ev[kind] then
      local key = K.parked(kind, ev[kind])
      redis.call('RPUSH', key, ARGV[2])
      redis.call('EXPIRE', key, D.PARK_TTL_S)
    end
  end
  result.parked = true
end

-- lock state: one compare-and-set on occurred_at; older events are logged, not applied
if ev.lock_state and device then
  local lk = K.lock_state(device)
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
      redis.call('XADD', K.OUTBOX, '*', 'type', 'lock.state_changed', 'device_id', device,
                 'event', ev.key, 'at', NOW)
      result.lock_changed = true
    end
  end
end

-- logs for the API and dashboard
local summary = ev.summary
summary.command_id = cid
summary.lock = result.lock
summary.parked = result.parked
local line = cjson.encode(summary)
if device then
  local log = K.device_events(device)
  redis.call('LPUSH', log, line)
  redis.call('LTRIM', log, 0, D.DEVICE_EVENT_LOG_CAP - 1)
  redis.call('ZADD', K.DEVICES, NOW, device)
end
redis.call('LPUSH', K.RECENT_EVENTS, line)
redis.call('LTRIM', K.RECENT_EVENTS, 0, D.RECENT_CAP - 1)
return cjson.encode(result)
