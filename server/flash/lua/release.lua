-- End checkout slots. Outcome "returned": the token is back in the pool (slot expired,
-- payment failed, customer left), so it is free again; "sold": it was sold. A slot ends
-- once: only a customer still holding one changes anything, so a repeat is a no-op.
-- When no token is free or held any more it says so: the caller asks PostgreSQL whether
-- the line is sold out (then closes it for everyone at once).
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admits, 6 entries
-- ARGV: 1 now, 2 slot seconds, 3 store, 4 max slots, then customer, outcome pairs
-- -> {ended, exhausted (1/0), can_admit (1/0)}
local now, slot_s = tonumber(ARGV[1]), tonumber(ARGV[2])
local ended = 0
for i = 5, #ARGV, 2 do
  local customer, outcome = ARGV[i], ARGV[i + 1]
  local expires = redis.call('ZSCORE', KEYS[3], customer)
  if expires then
    redis.call('ZREM', KEYS[3], customer)
    redis.call('HDEL', KEYS[5], customer)
    if outcome == 'returned' then redis.call('INCR', KEYS[4]) end
    if redis.call('HGET', KEYS[6], customer) == ARGV[3] then
      redis.call('HDEL', KEYS[6], customer)
    end
    -- how long the slot was used: the wait estimate follows it (moving average)
    local used = math.max(0, math.min(slot_s, now - (tonumber(expires) - slot_s)))
    local avg = tonumber(redis.call('HGET', KEYS[1], 'avg_slot_s') or tostring(slot_s / 2))
    redis.call('HSET', KEYS[1], 'avg_slot_s', tostring(0.9 * avg + 0.1 * used))
    ended = ended + 1
  end
end
local can = 0
if redis.call('HGET', KEYS[1], 'status') == 'open'
   and tonumber(redis.call('GET', KEYS[4]) or '0') > 0
   and redis.call('ZCARD', KEYS[3]) < tonumber(ARGV[4])
   and redis.call('ZCARD', KEYS[2]) > 0 then
  can = 1
end
return {ended, exhausted(KEYS[1], KEYS[3], KEYS[4]), can}
