-- Take or renew a background lease: KEYS[1] the lease (hash: owner, token), KEYS[2] its
-- fence counter (same hash tag, so one cluster slot), ARGV[1] this replica's owner id,
-- ARGV[2] the lease in ms, ARGV[3] a floor: the newest token PostgreSQL saw (if the counter
-- was lost, e.g. a flushed or fresh Redis, a new token still beats it), ARGV[4] "renew"
-- (a running holder's heartbeat: renew only, never take a free lease). Answers the
-- holder's fencing token while this replica holds the lease (a new holder takes a larger
-- one from INCR), else 0.
local holder = redis.call('HGET', KEYS[1], 'owner')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
if holder or ARGV[4] == 'renew' then
  return 0
end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3] or '0')
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
