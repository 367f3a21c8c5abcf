-- Where some customers stand in one store's line (the socket hub asks for all of its
-- sockets in one call).
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admits, 6 early
-- ARGV: customers
-- -> {status, reason, waiting, in_slots, free, avg_slot_s, in the waiting room,
--     then per customer: rank (-1: not waiting, -2: in the waiting room), ticket or '',
--     slot expiry or '', 'admit_no:ticket' or ''}
local out = {
  redis.call('HGET', KEYS[1], 'status') or '',
  redis.call('HGET', KEYS[1], 'reason') or '',
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('GET', KEYS[4]) or '0',
  redis.call('HGET', KEYS[1], 'avg_slot_s') or '',
  redis.call('ZCARD', KEYS[6]),
}
for _, customer in ipairs(ARGV) do
  local rank = redis.call('ZRANK', KEYS[2], customer)
  if not rank and redis.call('ZSCORE', KEYS[6], customer) then rank = -2 end
  table.insert(out, rank or -1)
  table.insert(out, redis.call('ZSCORE', KEYS[2], customer) or '')
  table.insert(out, redis.call('ZSCORE', KEYS[3], customer) or '')
  table.insert(out, redis.call('HGET', KEYS[5], customer) or '')
end
return out
