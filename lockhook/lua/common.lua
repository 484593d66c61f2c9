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
                  performed_via = ev.performed_via, method = ev.method}
  timeline(cid, {kind = 'event', event = ev.key, event_type = ev.type})
  return resolve(cid, status, fields, ev.key), nil
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
