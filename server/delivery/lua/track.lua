-- Keep what a fix read of the rider and their trip from PostgreSQL, unless a trip change
-- dropped it since the read began (the sequence moved on): a late fill never brings back
-- a trip the rider no longer rides.
-- KEYS: 1 the rider's track hash, 2 its sequence
-- ARGV: 1 the sequence seen before the read ('' none), 2 duty, 3 rows (JSON), 4 TTL (s)
-- -> 1 kept, 0 dropped
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'duty', ARGV[2], 'rows', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
