-- Command transitions that do not come from an event.
-- ARGV: prefix, now_ms, op, command_id, then per op:
--   attach  ids_json, ttl_s          attach action_id / action_attempt_id / custom_id; resolve from parked
--   expire                           pending past its deadline -> timed_out
--   reject  error_code, message      pending -> rejected (the issuer refused synchronously)
--   result  status, error_code, message, resolved_by   pending -> succeeded|failed (e.g. from polling)
--   discard                          forget a pending command that was never issued (network failure)
local op, cid = ARGV[3], ARGV[4]
local key = P .. 'cmd:' .. cid
local cur = redis.call('HMGET', key, 'status', 'deadline_at', 'device_id', 'action')
if not cur[1] then return {'missing', ''} end
if op == 'attach' then
  local ids = cjson.decode(ARGV[5])
  local outcome = ''
  for _, kind in ipairs({'action_id', 'custom_id', 'action_attempt_id'}) do
    local value = ids[kind]
    if value and value ~= '' then
      redis.call('HSET', key, kind, value)
      redis.call('SET', P .. 'idx:' .. kind .. ':' .. value, cid, 'EX', ARGV[6])
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
  return {'ok', resolve(cid, 'rejected', {error_code = ARGV[5], error_message = ARGV[6]}, 'issuer') or ''}
elseif op == 'result' then
  timeline(cid, {kind = 'polled', status = ARGV[5]})
  return {'ok', resolve(cid, ARGV[5], {error_code = ARGV[6], error_message = ARGV[7]}, ARGV[8]) or ''}
elseif op == 'discard' then
  if cur[1] ~= 'pending' then return {'noop', ''} end
  for _, kind in ipairs({'custom_id', 'action_id', 'action_attempt_id'}) do
    local value = redis.call('HGET', key, kind)
    if value and redis.call('GET', P .. 'idx:' .. kind .. ':' .. value) == cid then
      redis.call('DEL', P .. 'idx:' .. kind .. ':' .. value)
    end
  end
  redis.call('DEL', key, key .. ':timeline')
  redis.call('ZREM', P .. 'deadlines', cid)
  redis.call('ZREM', P .. 'cmds', cid)
  redis.call('ZREM', P .. 'device:' .. cur[3] .. ':cmds', cid)
  redis.call('ZREM', P .. 'pending:' .. cur[3] .. ':' .. cur[4], cid)
  return {'ok', ''}
end
return redis.error_reply('unknown op')
