-- End a hold: COMMITTED (payment succeeded: reserved units leave the books), RELEASED
-- (payment failed, cancel, cart emptied) or EXPIRED (the sweeper; only if still due).
-- The caller passes the hold's state and SKUs as it read them; if the hold changed
-- meanwhile the script answers RETRY. Ending an ended or unknown hold is a no-op (NOOP).
-- A SOFT hold's end is journaled (appended to the store's stream for the batch writer);
-- a HARD hold's is written by the caller, in its transaction.
-- KEYS: 1 ready, 2 expiry zset, 3 hold, 4 inflight, 5 journal stream, 6.. inventory hash
-- ARGV: 1 outcome, 2 holder, 3 now, 4 tombstone ttl s, 5 expected state, then the SKUs
-- -> {"OK", epoch, expires_at, sku, qty, ...} | {"NOOP", state} | {"RETRY"} | {"NOT_READY"}
--    | {"NOT_DUE"}
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'NOT_READY'} end
local outcome, holder = ARGV[1], ARGV[2]
local state = redis.call('HGET', KEYS[3], '_state')
if not state or (state ~= 'SOFT' and state ~= 'HARD') then return {'NOOP', state or ''} end
if state ~= ARGV[5] then return {'RETRY'} end
if outcome == 'EXPIRED' and tonumber(redis.call('HGET', KEYS[3], '_exp')) > tonumber(ARGV[3]) then
  return {'NOT_DUE'}
end
local n = #ARGV - 5
local fields = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[3])) do
  if string.sub(f, 1, 1) ~= '_' then fields = fields + 1 end
end
if fields ~= n then return {'RETRY'} end
local qtys = {}
for i = 1, n do
  local q = redis.call('HGET', KEYS[3], ARGV[5 + i])
  if not q then return {'RETRY'} end
  qtys[i] = tonumber(q)
end
local out = {'OK', epoch, redis.call('HGET', KEYS[3], '_exp') or ''}
local moved = {}
for i = 1, n do
  local inv, q = KEYS[5 + i], qtys[i]
  redis.call('HINCRBY', inv, 'reserved', -q)
  if outcome ~= 'COMMITTED' then redis.call('HINCRBY', inv, 'available', q) end
  table.insert(out, ARGV[5 + i]); table.insert(out, q)
  table.insert(moved, ARGV[5 + i] .. ':' .. q)
end
redis.call('DEL', KEYS[3])
-- a tombstone makes a late release or a repeated commit a no-op
redis.call('HSET', KEYS[3], '_state', outcome)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
redis.call('ZREM', KEYS[2], holder)
if state == 'SOFT' then
  redis.call('XADD', KEYS[5], '*', 'k', 'S', 'h', holder, 't', ARGV[3], 'o', outcome,
    'l', table.concat(moved, ';'))
elseif n > 0 then
  redis.call('INCR', KEYS[4])
end
return out
