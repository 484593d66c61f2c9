-- A lock's state as read from its cloud (Seam's locks.get / locks.list): corrects event-only state.
-- ARGV: now_ms, device_id, locked ('1' | '0'), read_ms, device_retention_s, outcome's event label
-- An event that happened after the read still wins (compare-and-set on occurred_at).
-- Returns 'applied' (corrected), 'agrees' (state as stored; read time noted) or 'stale' (a newer event).
local device, locked, read_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local lk = K.lock_state(device)
local cur = redis.call('HMGET', lk, 'occurred_at', 'locked')
if cur[1] and tonumber(cur[1]) > read_ms then return 'stale' end
if cur[2] == locked then
  redis.call('HSET', lk, 'read_at', read_ms)
  return 'agrees'
end
redis.call('HDEL', lk, 'method', 'performed_via', 'source_event', 'event_type')
redis.call('HSET', lk, 'device_id', device, 'locked', locked, 'occurred_at', read_ms, 'source', 'seam_api',
           'read_at', read_ms, 'updated_at', NOW)
redis.call('EXPIRE', lk, ARGV[5])
redis.call('ZADD', K.DEVICES, NOW, device)
redis.call('XADD', K.OUTBOX, '*', 'type', 'lock.state_changed', 'device_id', device, 'event', ARGV[6], 'at', NOW)
return 'applied'
