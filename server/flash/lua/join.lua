-- Join one store's line of a sale. One entry per customer: joining again reports the
-- entry (its ticket keeps its place); FIFO by ticket, the sale's join counter. Before the
-- sale starts a join enters the waiting room (``early``, O(log n)), whose order ``start``
-- shuffles once; a join after the start but before the shuffle asks for it first, so it
-- always lands behind everyone who came early. A customer who bought the sale's limit
-- (``bought``, written after each sale commits) is refused here: PostgreSQL checks again
-- at checkout. A waiting answer carries the line's figures, so the caller needs no second
-- round trip to describe the entry.
-- KEYS: 1 state, 2 entries, 3 tickets, 4 wait, 5 slots, 6 free, 7 early, 8 bought
-- One call joins the customers of one event-loop turn, in the order they came (each
-- answered as by a call of its own), seven fields each (the shorter answers padded).
-- ARGV: 1 store, 2 max slots, 3 sale start (unix s), 4 per-customer limit, then per
--       customer: id, now (unix s)
-- -> per customer: {"WAITING", ticket, rank (0 = next), can_admit (1/0), in slots, free, avg slot s}
--    | {"ADMITTED", slot expiry} | {"EARLY", in the waiting room, in slots, free}
--    | {"START_DUE"} | {"CLOSED", reason} | {"ELSEWHERE", store} | {"LIMIT", bought}
--    | {"NOT_READY"}
local store = ARGV[1]

local function join(customer, now)
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_READY'} end
  local bought = tonumber(redis.call('HGET', KEYS[8], customer) or '0')
  if bought >= tonumber(ARGV[4]) then return {'LIMIT', bought} end
  if redis.call('HGET', KEYS[1], 'status') ~= 'open' then
    return {'CLOSED', redis.call('HGET', KEYS[1], 'reason') or ''}
  end
  local at = redis.call('HGET', KEYS[2], customer)
  if at and at ~= store then return {'ELSEWHERE', at} end
  local expires = redis.call('ZSCORE', KEYS[5], customer)
  if expires then return {'ADMITTED', expires} end
  local in_slots = redis.call('ZCARD', KEYS[5])
  local free = redis.call('GET', KEYS[6]) or '0'
  if redis.call('HGET', KEYS[1], 'started') == '0' then
    if tonumber(now) >= tonumber(ARGV[3]) then return {'START_DUE'} end
    redis.call('ZADD', KEYS[7], 'NX', 0, customer)
    redis.call('HSET', KEYS[2], customer, store)
    return {'EARLY', redis.call('ZCARD', KEYS[7]), in_slots, free}
  end
  local ticket = redis.call('ZSCORE', KEYS[4], customer)
  if not ticket then
    ticket = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[4], ticket, customer)
    redis.call('HSET', KEYS[2], customer, store)
  end
  local rank = redis.call('ZRANK', KEYS[4], customer)
  local can = 0
  if tonumber(free) > 0 and in_slots < tonumber(ARGV[2]) then can = 1 end
  return {'WAITING', tostring(ticket), rank, can, in_slots, free,
    redis.call('HGET', KEYS[1], 'avg_slot_s') or ''}
end

local out = {}
for i = 5, #ARGV, 2 do
  local answer = join(ARGV[i], ARGV[i + 1])
  for k = 1, 7 do table.insert(out, answer[k] or '') end
end
return out
