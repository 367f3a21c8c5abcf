-- A waiting customer leaves the line or the waiting room (an admitted one gives the slot
-- back by release).
-- KEYS: 1 wait, 2 entries, 3 early
-- ARGV: 1 customer, 2 store
-- -> 1 left | 0 was not waiting
if redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then
  return 0
end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
