-- Give checkout slots to the head of the line, strictly in ticket order: as many as there
-- are free slots and free tokens and, with a rate, as the admission budget allows (a
-- token bucket of ``burst`` refilled at ``rate`` per second of the server clock). Each
-- slot takes one free token until it ends. The admission is announced (``confirm``) once
-- PostgreSQL has committed the claims.
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admitted
-- ARGV: 1 slot expiry (unix s), 2 max slots, 3 now (unix s), 4 rate per s (0: no rate),
--       5 burst
-- -> {"OK", customer, ticket, admit_no, ...} | {"CLOSED"} | {"NOT_READY"}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_READY'} end
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return {'CLOSED'} end
local room = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[3])
local n = math.min(room, tonumber(redis.call('GET', KEYS[4]) or '0'))
local out = {'OK'}
local rate, budget = tonumber(ARGV[4]), 0
if rate > 0 then
  local now, burst = tonumber(ARGV[3]), tonumber(ARGV[5])
  local at = tonumber(redis.call('HGET', KEYS[1], 'budget_at') or ARGV[3])
  budget = tonumber(redis.call('HGET', KEYS[1], 'budget') or ARGV[5])
  budget = math.min(burst, budget + math.max(0, now - at) * rate)
  redis.call('HSET', KEYS[1], 'budget', tostring(budget), 'budget_at', ARGV[3])
  n = math.min(n, math.floor(budget))
end
if n <= 0 then return out end
local popped = redis.call('ZPOPMIN', KEYS[2], n)
if rate > 0 then
  redis.call('HSET', KEYS[1], 'budget', tostring(budget - #popped / 2))
end
for i = 1, #popped, 2 do
  local customer, ticket = popped[i], popped[i + 1]
  local no = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[3], ARGV[1], customer)
  redis.call('DECR', KEYS[4])
  table.insert(out, customer); table.insert(out, ticket); table.insert(out, no)
end
return out
