-- Fire one due lock-watch check for a lock still unlocked; at most once per unlocked period.
-- ARGV: now_ms, check (left_unlocked | auto_relock), device_id, period (the unlocking event's key
--       the check was scheduled for, or "" from the sweep)
-- Returns {"fired"|"relock"|"no_issuer"|"early"|"noop", issuer or due ms or ""}.
local check, device, period = ARGV[2], ARGV[3], ARGV[4]
local member = check .. ':' .. device
local watch = K.LOCK_WATCH
local due = redis.call('ZSCORE', watch, member)
if not due then return {'noop', ''} end
local lk = K.lock_state(device)
local cur = redis.call('HMGET', lk, 'locked', 'unlocked_event', 'issuer')
if period ~= '' and cur[2] ~= period then return {'noop', ''} end  -- a job of an earlier period
if cur[1] ~= '0' then
  redis.call('ZREM', watch, member)
  return {'noop', ''}
end
if tonumber(due) > tonumber(NOW) then return {'early', due} end
redis.call('ZREM', watch, member)
if check == 'left_unlocked' then
  redis.call('XADD', K.OUTBOX, '*', 'type', 'lock.left_unlocked', 'device_id', device, 'event', cur[2], 'at', NOW)
  return {'fired', ''}
end
if not cur[3] then
  anomaly({kind = 'auto_relock_without_issuer', device_id = device, event = cur[2]})
  return {'no_issuer', ''}
end
return {'relock', cur[3]}
