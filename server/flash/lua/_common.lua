-- Shared by the queue scripts (prepended when a script is loaded).
-- Close one store's line: everyone still waiting (in line or in the waiting room) is
-- dropped at once (their entries go, so a poll reads "closed"); returns how many.
local function close_line(state, wait, early, entries, store, reason)
  if redis.call('HGET', state, 'status') ~= 'closed' then
    redis.call('HSET', state, 'status', 'closed', 'reason', reason)
  end
  local dropped = 0
  for _, room in ipairs({wait, early}) do
    local waiting = redis.call('ZRANGE', room, 0, -1)
    for _, customer in ipairs(waiting) do
      if redis.call('HGET', entries, customer) == store then redis.call('HDEL', entries, customer) end
    end
    redis.call('DEL', room)
    dropped = dropped + #waiting
  end
  return dropped
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
