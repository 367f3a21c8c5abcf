-- The sale starts: the waiting room is shuffled once (Fisher-Yates seeded by the caller
-- from a secure source), so arriving early by a second is no advantage, and its customers
-- take the line's first tickets in that order; anyone joining later is behind them.
-- KEYS: 1 state, 2 early, 3 wait, 4 tickets
-- ARGV: 1 seed
-- -> how many came from the waiting room | -1 started already
if redis.call('HGET', KEYS[1], 'started') ~= '0' then return -1 end
local early = redis.call('ZRANGE', KEYS[2], 0, -1)
math.randomseed(tonumber(ARGV[1]))
for i = #early, 2, -1 do
  local j = math.random(1, i)
  early[i], early[j] = early[j], early[i]
end
local base = redis.call('INCRBY', KEYS[4], #early) - #early
for i, customer in ipairs(early) do
  redis.call('ZADD', KEYS[3], base + i, customer)
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'started', '1')
return #early
