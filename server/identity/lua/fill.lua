-- Cache a user's auth state read from PostgreSQL (identity.service.current_user), unless
-- the key holds an entry already or a revocation mark the read does not include: a read
-- begun before a logout committed must not put the pre-logout state back.
-- KEYS[1] the user's auth key. ARGV[1] the entry (JSON), ARGV[2] the tokens_valid_after
-- the read saw (unix microseconds, 0: none), ARGV[3] its TTL (s).
local current = redis.call('GET', KEYS[1])
if current then
  local mark = string.match(current, '^revoked:(%d+)$')
  if not mark or tonumber(ARGV[2]) < tonumber(mark) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
