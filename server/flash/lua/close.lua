-- The sale ended or was stopped: close the line and drop every slot (their tokens went
-- back to regular stock in PostgreSQL); nothing is free any more.
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admits, 6 entries, 7 early
-- ARGV: 1 reason, 2 store
-- -> dropped (waiting customers told at once)
local dropped = close_line(KEYS[1], KEYS[2], KEYS[7], KEYS[6], ARGV[2], ARGV[1])
for _, customer in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('HDEL', KEYS[5], customer)
  if redis.call('HGET', KEYS[6], customer) == ARGV[2] then redis.call('HDEL', KEYS[6], customer) end
end
redis.call('DEL', KEYS[3])
redis.call('SET', KEYS[4], 0)
return dropped
