-- One token check from one client address, decided atomically against its failure counter.
-- KEYS[1]: the address's counter; ARGV: prefix, now_ms, correct ("1"|"0"), max failures, window_s.
-- Returns {1, failures} when the check may answer (a wrong token is counted), {0, retry_after_s} when the
-- address has used up its failures: then the answer must not depend on the token at all.
local key = KEYS[1]
local window = tonumber(ARGV[5])
local failures = tonumber(redis.call('GET', key) or '0') or 0
if failures >= tonumber(ARGV[4]) then
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    redis.call('EXPIRE', key, window)
    ttl = window
  end
  return {0, ttl}
end
if ARGV[3] == '1' then return {1, failures} end
failures = redis.call('INCR', key)
if failures == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, window) end
return {1, failures}
