-- Join one store's line of a sale. One entry per customer: joining again reports the
-- entry (its ticket keeps its place); FIFO by ticket, the sale's join counter. Before the
-- sale starts a join enters the waiting room (``early``, O(log n)), whose order ``start``
-- shuffles once; a join after the start but before the shuffle asks for it first, so it
-- always lands behind everyone who came early.
-- KEYS: 1 state, 2 entries, 3 tickets, 4 wait, 5 slots, 6 free, 7 early
-- ARGV: 1 customer, 2 store, 3 max slots, 4 now (unix s), 5 sale start (unix s)
-- -> {"WAITING", ticket, rank (0 = next), can_admit (1/0)} | {"ADMITTED", slot expiry}
--    | {"EARLY", how many wait in the room} | {"START_DUE"}
--    | {"CLOSED", reason} | {"ELSEWHERE", store} | {"NOT_READY"}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_READY'} end
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
  return {'CLOSED', redis.call('HGET', KEYS[1], 'reason') or ''}
end
local customer, store = ARGV[1], ARGV[2]
local at = redis.call('HGET', KEYS[2], customer)
if at and at ~= store then return {'ELSEWHERE', at} end
local expires = redis.call('ZSCORE', KEYS[5], customer)
if expires then return {'ADMITTED', expires} end
if redis.call('HGET', KEYS[1], 'started') == '0' then
  if tonumber(ARGV[4]) >= tonumber(ARGV[5]) then return {'START_DUE'} end
  redis.call('ZADD', KEYS[7], 'NX', 0, customer)
  redis.call('HSET', KEYS[2], customer, store)
  return {'EARLY', redis.call('ZCARD', KEYS[7])}
end
local ticket = redis.call('ZSCORE', KEYS[4], customer)
if not ticket then
  ticket = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[4], ticket, customer)
  redis.call('HSET', KEYS[2], customer, store)
end
local rank = redis.call('ZRANK', KEYS[4], customer)
local free = tonumber(redis.call('GET', KEYS[6]) or '0')
local can = 0
if free > 0 and redis.call('ZCARD', KEYS[5]) < tonumber(ARGV[3]) then can = 1 end
return {'WAITING', tostring(ticket), rank, can}
