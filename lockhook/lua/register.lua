-- Register a command (idempotent on custom_id / Idempotency-Key) and resolve it from parked events.
-- ARGV: now_ms, command_json (string fields), idempotency_key or ""
-- Returns {"created"|"existing", command_id, outcome or ""}.
local c = cjson.decode(ARGV[2])
local idem = ARGV[3]
local ttl = D.COMMAND_TTL_S
local function existing(kind, value)
  if not value or value == '' then return nil end
  local v = redis.call('GET', K.id_index(kind, value))
  if v and redis.call('EXISTS', K.command(v)) == 1 then return v end
  return nil
end
local ex = existing('idempotency_key', idem) or existing('custom_id', c.custom_id)
  or existing('action_id', c.action_id) or existing('action_attempt_id', c.action_attempt_id)
if ex then return {'existing', ex, ''} end

local cid = c.command_id
local key = K.command(cid)
for k, v in pairs(c) do redis.call('HSET', key, k, v) end
redis.call('EXPIRE', key, ttl)
redis.call('ZADD', K.COMMANDS, c.created_at, cid)
redis.call('ZADD', K.device_commands(c.device_id), c.created_at, cid)
-- the device's index lives as long as its newest command and drops the ones that expired
redis.call('ZREMRANGEBYSCORE', K.device_commands(c.device_id), '-inf', tonumber(NOW) - D.COMMAND_TTL_MS)
redis.call('EXPIRE', K.device_commands(c.device_id), D.COMMAND_TTL_S)
if idem ~= '' then redis.call('SET', K.id_index('idempotency_key', idem), cid, 'EX', ttl) end
for _, kind in ipairs({'custom_id', 'action_id', 'action_attempt_id'}) do
  if c[kind] and c[kind] ~= '' then redis.call('SET', K.id_index(kind, c[kind]), cid, 'EX', ttl) end
end
timeline(cid, {kind = 'registered', via = c.via, status = c.status})
local outcome = ''
if c.status == 'pending' then
  redis.call('ZADD', K.DEADLINES, c.deadline_at, cid)
  redis.call('ZADD', K.pending_commands(c.device_id, c.action), c.created_at, cid)
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    outcome = unpark(cid, kind, c[kind]) or outcome
  end
else
  redis.call('XADD', K.OUTBOX, '*', 'type', 'command.' .. c.status, 'command_id', cid, 'at', NOW)
  redis.call('HINCRBY', K.COMMAND_STATS, c.status, 1)
  outcome = 'command.' .. c.status
end
return {'created', cid, outcome}
