-- Shared helpers prepended to every lockhook script (after the generated K / D header). ARGV[1]: the time in ms.
local NOW = ARGV[1]

local function timeline(cid, entry)
  local key = K.command_timeline(cid)
  entry['at'] = NOW
  redis.call('RPUSH', key, cjson.encode(entry))
  redis.call('LTRIM', key, -D.COMMAND_TIMELINE_CAP, -1)
  redis.call('EXPIRE', key, D.COMMAND_TTL_S)  -- a timeline goes with its command
end

local function anomaly(entry)
  entry['at'] = NOW
  local line = cjson.encode(entry)
  redis.call('LPUSH', K.ANOMALIES, line)
  redis.call('LTRIM', K.ANOMALIES, 0, D.RECENT_CAP - 1)
  return entry
end

-- Confirmation latency (created -> resolved) by via, for /metrics: one non-cumulative bucket + sum + count.
local function observe_latency(via, created)
  if not via or not created then return end
  local ms = math.max(0, tonumber(NOW) - (tonumber(created) or tonumber(NOW)))
  local le = 'inf'
  for _, b in ipairs(D.LATENCY_BUCKETS_MS) do
    if ms <= b then le = tostring(b) break end
  end
  local h = K.LATENCY_STATS
  redis.call('HINCRBY', h, via .. ':le_' .. le, 1)
  redis.call('HINCRBY', h, via .. ':sum_ms', ms)
  redis.call('HINCRBY', h, via .. ':count', 1)
end

-- What a confirmed command records as `resolved_by`: the bare event id, else the delivery id. Events parked
-- by an older release carry only their key ("event:<id>", "delivery:<endpoint>:<id>"), which reads bare.
local function event_ref(ev)
  return ev.ref or ev.key
end

-- The issuer (seam | device_cloud) that last confirmed a command for its device, kept on the lock state:
-- an auto-relock goes through it.
local function remember_issuer(cid)
  local c = redis.call('HMGET', K.command(cid), 'device_id', 'via')
  if c[1] and (c[2] == 'seam' or c[2] == 'device_cloud') then
    local lk = K.lock_state(c[1])
    redis.call('HSET', lk, 'issuer', c[2])
    if redis.call('TTL', lk) == -1 then redis.call('EXPIRE', lk, D.DEVICE_RETENTION_S) end  -- no event kept it
  end
end

-- Move a command out of pending (or out of timed_out, marking it late). Exactly one caller wins.
-- fields: table of extra hash fields (error_code, performed_via, ...). Returns the outcome type or nil.
local function resolve(cid, status, fields, resolved_by)
  local key = K.command(cid)
  local cur = redis.call('HMGET', key, 'status', 'device_id', 'action', 'via', 'created_at')
  if not cur[1] then return nil end
  local late = false
  if cur[1] == 'pending' then
    late = false
  elseif cur[1] == 'timed_out' and (status == 'succeeded' or status == 'failed') then
    late = true
  else
    return nil
  end
  redis.call('HSET', key, 'status', status, 'resolved_at', NOW, 'resolved_by', resolved_by or '',
             'late', late and '1' or '0')
  for name, value in pairs(fields) do
    if value ~= '' then redis.call('HSET', key, name, value) end
  end
  redis.call('ZREM', K.DEADLINES, cid)
  redis.call('ZREM', K.pending_commands(cur[2], cur[3]), cid)
  local outcome = late and 'command.late_result' or ('command.' .. status)
  redis.call('XADD', K.OUTBOX, '*', 'type', outcome, 'command_id', cid, 'at', NOW)
  redis.call('HINCRBY', K.COMMAND_STATS, late and 'late_result' or status, 1)
  if status == 'succeeded' or status == 'failed' then observe_latency(cur[4], cur[5]) end
  redis.call('PUBLISH', K.command_channel(cid), status)
  timeline(cid, {kind = 'resolved', status = status, late = late, by = resolved_by or ''})
  return outcome
end

-- Which ids of an event its sender may confirm a command by (events parked before this rule: all).
local function sender_id_kinds(endpoint)
  if endpoint == 'seam' then return {'action_attempt_id'} end
  if endpoint == 'device-cloud' then return {'action_id', 'custom_id'} end
  return {'action_id', 'custom_id', 'action_attempt_id'}
end

-- A command issued through one sender is never confirmed by another's event (external ones by either).
local function sender_may_resolve(endpoint, via)
  if endpoint == 'seam' then return via ~= 'device_cloud' end
  if endpoint == 'device-cloud' then return via ~= 'seam' end
  return true
end

-- Apply an action result (a decoded event table) to a command: checks that the action agrees.
local function apply_result(cid, ev)
  local cmd = redis.call('HMGET', K.command(cid), 'action', 'via')
  local action = cmd[1]
  if not action then return nil, nil end
  if not sender_may_resolve(ev.endpoint, cmd[2]) then
    return nil, anomaly({kind = 'sender_mismatch', command_id = cid, command_via = cmd[2],
                         event_endpoint = ev.endpoint, event = ev.key, event_type = ev.type})
  end
  if ev.action and ev.action ~= action then
    return nil, anomaly({kind = 'contradicting_action', command_id = cid, command_action = action,
                         event_action = ev.action, event = ev.key, event_type = ev.type})
  end
  local status = ev.success and 'succeeded' or 'failed'
  local fields = {error_code = ev.error_code, error_message = ev.error_message,
                  performed_via = ev.performed_via, method = ev.method, resolved_via = ev.source or 'webhook'}
  timeline(cid, {kind = 'event', event = ev.key, event_type = ev.type})
  local outcome = resolve(cid, status, fields, event_ref(ev))
  if outcome then remember_issuer(cid) end
  return outcome, nil
end

-- Events parked under their ids before the command (or its ids) existed: resolve from them now.
local function unpark(cid, kind, value)
  if not value or value == '' then return nil end
  local key = K.parked(kind, value)
  local parked = redis.call('LRANGE', key, 0, -1)
  if #parked == 0 then return nil end
  redis.call('DEL', key)
  local outcome = nil
  for _, raw in ipairs(parked) do
    local ev = cjson.decode(raw)
    local o = apply_result(cid, ev)
    outcome = outcome or o
  end
  return outcome
end

-- Lock watch: unlocks no command explains, doors left unlocked, auto-relock; device health.

-- Keep an event's log entry for the payload of an outcome it causes (now or when a watch check fires).
local function keep_event_record(ev)
  redis.call('SET', K.event_record(ev.key), cjson.encode(ev.summary), 'EX', D.EVENT_RECORD_TTL_S)
end

-- An outcome about a device that an event caused, with the event's entry kept for its payload.
local function watch_outcome(kind, device, ev)
  keep_event_record(ev)
  redis.call('XADD', K.OUTBOX, '*', 'type', kind, 'device_id', device, 'event', ev.key, 'at', NOW)
end

-- An applied unlock is explained by the command it matched (an unlock), or, when it may be a remote
-- action whose command it could not match (id-less, or parked until its command's ids attach), by an unlock
-- command for the device created inside the correlation window that is pending, succeeded or timed out.
local function unlock_explained(ev, device, cid, parked)
  if cid then return redis.call('HGET', K.command(cid), 'action') == 'unlock' end
  if not (ev.match_by_device_window or parked) then return false end
  local at = tonumber(ev.occurred)
  local near = redis.call('ZRANGEBYSCORE', K.device_commands(device),
                          string.format('%.0f', at - D.CORRELATION_WINDOW_MS),
                          string.format('%.0f', at + D.CORRELATION_CLOCK_SKEW_MS), 'LIMIT', 0, D.UNLOCK_EXPLAIN_SCAN)
  for _, other in ipairs(near) do
    local c = redis.call('HMGET', K.command(other), 'action', 'status')
    if c[1] == 'unlock' and (c[2] == 'pending' or c[2] == 'succeeded' or c[2] == 'timed_out') then return true end
  end
  return false
end

-- A lock that just changed state: an unlock starts an unlocked period (one due check per enabled
-- watch, keyed by the unlocking event), a lock ends it. Returns {check = due_ms} for the checks it set.
local function watch_transition(device, locked, ev, checks)
  local lk = K.lock_state(device)
  local due = {}
  if locked == '1' then
    redis.call('HDEL', lk, 'unlocked_since', 'unlocked_event')
    for check, _ in pairs(checks) do redis.call('ZREM', K.LOCK_WATCH, check .. ':' .. device) end
    return due
  end
  redis.call('HSET', lk, 'unlocked_since', ev.occurred, 'unlocked_event', ev.key)
  for check, after_ms in pairs(checks) do
    if after_ms > 0 then
      due[check] = tonumber(ev.occurred) + after_ms
      redis.call('ZADD', K.LOCK_WATCH, string.format('%.0f', due[check]), check .. ':' .. device)
    end
  end
  return due
end

-- Seam's device.connected / disconnected / low_battery / battery_status_changed: `online` and battery on
-- the lock state (an older event than the one applied is logged, not applied), and an outcome of its type.
local function apply_health(ev, device)
  local lk = K.lock_state(device)
  local stored = redis.call('HGET', lk, 'health_at')
  if stored and tonumber(stored) > tonumber(ev.occurred) then
    ev.summary.health = 'stale'
    return 'stale'
  end
  redis.call('HSET', lk, 'device_id', device, 'health_at', ev.occurred)
  for name, value in pairs(ev.health) do redis.call('HSET', lk, name, value) end
  ev.summary.health = 'applied'
  watch_outcome(ev.type, device, ev)
  return 'applied'
end
