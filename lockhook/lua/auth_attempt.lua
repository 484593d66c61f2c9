-- One token check from one client address, decided atomically against the address's failure counter.
-- ARGV: now_ms, client address, correct ("1"|"0").
-- Returns {1, failures} when the check may answer (a wrong token is counted), {0, retry_after_s} when the
-- address has used up its failures: then the answer must not depend on the token at all.
local key = K.auth_failures(ARGV[2])
local failures = tonumber(redis.call('GET', key) or '0') or 0
if failures >= D.AUTH_FAILURES_MAX then
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    redis.call('EXPIRE', key, D.AUTH_FAILURE_WINDOW_S)
    ttl = D.AUTH_FAILURE_WINDOW_S
  end
  return {0, ttl}
end
if ARGV[3] == '1' then return {1, failures} end
failures = redis.call('INCR', key)
if failures == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, D.AUTH_FAILURE_WINDOW_S) end
return {1, failures}
