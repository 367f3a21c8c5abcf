-- A replica's heartbeat for a sharded loop: KEYS[1] the members (zset owner -> expiry,
-- unix ms), ARGV[1] owner, ARGV[2] now (ms), ARGV[3] how long a heartbeat lasts (ms).
-- Drops expired members and answers how many replicas share the loop now.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
