-- Process one parsed event exactly once: event log, lock state, correlation, resolution, outbox.
-- ARGV: now_ms, event_json (a lockhook.processing.events.NormalizedEvent), device_retention_s,
--       access_denied_alert_count, left_unlocked_after_ms, auto_relock_after_ms
local ev = cjson.decode(ARGV[2])
local device_ttl = tonumber(ARGV[3]) or D.DEVICE_RETENTION_S
local denials_alert = tonumber(ARGV[4]) or D.ACCESS_DENIED_ALERT_COUNT
-- the processed mark is set last: Redis keeps what a failing script wrote before it failed, and a mark
-- set first would turn the retry of a failed event into a "duplicate" (lost)
local mark = K.processed(ev.endpoint, ev.key)
local seen = redis.call('GET', mark)
if seen then
  if ev.digest and seen ~= '1' and seen ~= ev.digest then  -- same id, another body: say so
    local anom = anomaly({kind = 'event_id_conflict', event = ev.key, event_type = ev.type, endpoint = ev.endpoint})
    return cjson.encode({status = 'duplicate', anomaly = anom})
  end
  return cjson.encode({status = 'duplicate'})
end
local result = {status = 'applied'}
redis.call('HINCRBY', K.EVENT_STATS, ev.stats_type or ev.type, 1)
if ev.summary.problem then  -- kept and counted, never applied: say why
  result.anomaly = anomaly({kind = 'invalid_event', event = ev.key, event_type = ev.type,
                            problem = ev.summary.problem})
end

-- correlation, first match wins (the four rules in the README's "How it works")
local cid = nil
if ev.is_action_result then
  local function lookup(kind, value)
    if cid or not value then return end
    local v = redis.call('GET', K.id_index(kind, value))
    if v then cid = v end
  end
  -- each sender confirms by its own ids only: Seam by action attempt, a device cloud by action / custom id
  for _, kind in ipairs(sender_id_kinds(ev.endpoint)) do lookup(kind, ev[kind]) end
  if not cid and ev.match_by_device_window and ev.device_id and ev.action and ev.endpoint ~= 'device-cloud' then
    local at = tonumber(ev.occurred)
    local hits = redis.call('ZRANGEBYSCORE', K.pending_commands(ev.device_id, ev.action),
                            string.format('%.0f', at - D.CORRELATION_WINDOW_MS),
                            string.format('%.0f', at + D.CORRELATION_CLOCK_SKEW_MS), 'LIMIT', 0,
                            D.CORRELATION_CANDIDATES)
    for _, candidate in ipairs(hits) do
      if sender_may_resolve(ev.endpoint, redis.call('HGET', K.command(candidate), 'via')) then
        cid = candidate
        break
      end
    end
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
  for _, kind in ipairs(sender_id_kinds(ev.endpoint)) do
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
  local locked = (ev.lock_state == 'locked') and '1' or '0'
  if cur[1] and tonumber(cur[1]) > tonumber(ev.occurred) and cur[2] == locked then
    result.lock = 'agrees'  -- older, but saying what is known already (a lock event after its action attempt)
  elseif cur[1] and tonumber(cur[1]) > tonumber(ev.occurred) then
    result.lock = 'stale'
    result.anomaly = result.anomaly or anomaly({kind = 'stale_lock_event', device_id = device, event = ev.key,
                                               event_occurred_at = ev.occurred, stored_occurred_at = cur[1]})
  else
    redis.call('HDEL', lk, 'method', 'performed_via', 'source', 'read_at')
    redis.call('HSET', lk, 'device_id', device, 'locked', locked, 'occurred_at', ev.occurred, 'endpoint', ev.endpoint,
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

-- a denied keypad code is news; a few in a row on one lock are an alarm (once per window)
if ev.type == 'lock.access_denied' and device then
  local fields = {'type', 'lock.access_denied', 'device_id', device, 'event', ev.key, 'at', NOW}
  if ev.access_code_id then
    fields[#fields + 1] = 'access_code_id'
    fields[#fields + 1] = ev.access_code_id
  end
  redis.call('XADD', K.OUTBOX, '*', unpack(fields))
  local denials = K.access_denials(device)
  redis.call('ZADD', denials, NOW, ev.key)
  redis.call('ZREMRANGEBYSCORE', denials, '-inf', tonumber(NOW) - D.ACCESS_DENIED_WINDOW_MS)
  redis.call('PEXPIRE', denials, D.ACCESS_DENIED_WINDOW_MS)
  if redis.call('ZCARD', denials) >= denials_alert
      and redis.call('SET', K.access_denied_alerted(device), '1', 'NX', 'PX', D.ACCESS_DENIED_WINDOW_MS) then
    redis.call('XADD', K.OUTBOX, '*', 'type', 'lock.access_denied_repeatedly', 'device_id', device,
               'event', ev.key, 'count', redis.call('ZCARD', denials), 'at', NOW)
  end
end

-- lock watch and device health (helpers in common.lua)
if device then
  if result.lock_changed then
    result.watch = watch_transition(device, ev.lock_state == 'locked' and '1' or '0', ev,
                                    {left_unlocked = tonumber(ARGV[5]) or 0, auto_relock = tonumber(ARGV[6]) or 0})
    if next(result.watch) then keep_event_record(ev) end
  end
  if result.lock == 'applied' and ev.lock_state == 'unlocked'
      and not unlock_explained(ev, device, cid, result.parked) then
    ev.summary.unlocked_without_command = true
    watch_outcome('lock.unlocked_without_command', device, ev)
    result.unlocked_without_command = true
  end
  if ev.health then result.health = apply_health(ev, device) end
  result.device_id = device
end

-- logs for the API and dashboard
local summary = ev.summary
summary.command_id = cid
summary.lock = result.lock
summary.parked = result.parked
local line = cjson.encode(summary)
if device then  -- a device's keys live DEVICE_RETENTION_DAYS past its last event (the index is trimmed so)
  local log = K.device_events(device)
  redis.call('LPUSH', log, line)
  redis.call('LTRIM', log, 0, D.DEVICE_EVENT_LOG_CAP - 1)
  redis.call('EXPIRE', log, device_ttl)
  if redis.call('EXISTS', K.lock_state(device)) == 1 then redis.call('EXPIRE', K.lock_state(device), device_ttl) end
  redis.call('ZADD', K.DEVICES, NOW, device)
end
redis.call('LPUSH', K.RECENT_EVENTS, line)
redis.call('LTRIM', K.RECENT_EVENTS, 0, D.RECENT_CAP - 1)
redis.call('SET', mark, ev.digest or '1', 'EX', D.PROCESSED_TTL_S)
return cjson.encode(result)
