-- Shared by the queue scripts (prepended when a script is loaded).
-- Close one store's line: everyone still waiting is dropped at once (their entries go, so
-- a poll reads "closed"); returns how many were waiting.
local function close_line(state, wait, entries, store, reason)
  if redis.call('HGET', state, 'status') ~= 'closed' then
    redis.call('HSET', state, 'status', 'closed', 'reason', reason)
  end
  local waiting = redis.call('ZRANGE', wait, 0, -1)
  for _, customer in ipairs(waiting) do
    if redis.call('HGET', entries, customer) == store then redis.call('HDEL', entries, customer) end
  end
  redis.call('DEL', wait)
  return #waiting
end

-- Exhausted: no token is free and no slot holds one. Then the line is sold out, or the
-- count is off: the caller asks PostgreSQL which (``refill`` or ``close``).
local function exhausted(state, slots, free)
  if redis.call('HGET', state, 'status') == 'open'
     and tonumber(redis.call('GET', free) or '0') <= 0
     and redis.call('ZCARD', slots) == 0 then
    return 1
  end
  return 0
end
