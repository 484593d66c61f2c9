-- Command transitions that do not come from an event.
-- ARGV: now_ms, op, command_id, then per op:
--   attach  ids_json                 attach action_id / action_attempt_id / custom_id; resolve from parked
--   expire                           pending past its deadline -> timed_out
--   reject  error_code, message      pending -> rejected (the issuer refused synchronously)
--   result  status, error_code, message, resolved_by, resolved_via   pending -> succeeded|failed (e.g. polling)
--   discard                          forget a pending command that was never issued (network failure)
local op, cid = ARGV[2], ARGV[3]
local key = K.command(cid)
local cur = redis.call('HMGET', key, 'status', 'deadline_at', 'device_id', 'action')
if not cur[1] then return {'missing', ''} end
if op == 'attach' then
  local ids = cjson.decode(ARGV[4])
  local outcome = ''
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    local value = ids[kind]
    if value and value ~= '' then
      redis.call('HSET', key, kind, value)
      redis.call('SET', K.id_index(kind, value), cid, 'EX', D.COMMAND_TTL_S)
      timeline(cid, {kind = 'ids_attached', id_kind = kind, value = value})
    end
  end
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    outcome = unpark(cid, kind, ids[kind]) or outcome
  end
  return {'ok', outcome}
elseif op == 'expire' then
  if cur[1] == 'pending' and tonumber(cur[2]) <= tonumber(NOW) then
    return {'ok', resolve(cid, 'timed_out', {}, 'deadline') or ''}
  end
  return {'noop', ''}
elseif op == 'reject' then
  return {'ok', resolve(cid, 'rejected', {error_code = ARGV[4], error_message = ARGV[5], resolved_via = 'issuer'},
                        'issuer') or ''}
elseif op == 'result' then
  timeline(cid, {kind = 'polled', status = ARGV[4]})
  local outcome = resolve(cid, ARGV[4], {error_code = ARGV[5], error_message = ARGV[6], resolved_via = ARGV[8]},
                          ARGV[7])
  if outcome then remember_issuer(cid) end
  return {'ok', outcome or ''}
elseif op == 'discard' then
  if cur[1] ~= 'pending' then return {'noop', ''} end
  for _, kind in ipairs({'custom_id', 'action_id', 'action_attempt_id'}) do
    local value = redis.call('HGET', key, kind)
    if value and redis.call('GET', K.id_index(kind, value)) == cid then
      redis.call('DEL', K.id_index(kind, value))
    end
  end
  redis.call('DEL', key, K.command_timeline(cid))
  redis.call('ZREM', K.DEADLINES, cid)
  redis.call('ZREM', K.COMMANDS, cid)
  redis.call('ZREM', K.device_commands(cur[3]), cid)
  redis.call('ZREM', K.pending_commands(cur[3], cur[4]), cid)
  return {'ok', ''}
end
return redis.error_reply('unknown op')
