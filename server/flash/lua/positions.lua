-- Where some customers stand in one store's line (the socket hub asks for all of its
-- sockets in one call).
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admits
-- ARGV: customers
-- -> {status, reason, waiting, in_slots, free, avg_slot_s,
--     then per customer: rank (-1: not waiting), ticket or '', slot expiry or '',
--     'admit_no:ticket' or ''}
local out = {
  redis.call('HGET', KEYS[1], 'status') or '',
  redis.call('HGET', KEYS[1], 'reason') or '',
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('GET', KEYS[4]) or '0',
  redis.call('HGET', KEYS[1], 'avg_slot_s') or '',
}
for _, customer in ipairs(ARGV) do
  local rank = redis.call('ZRANK', KEYS[2], customer)
  table.insert(out, rank or -1)
  table.insert(out, redis.call('ZSCORE', KEYS[2], customer) or '')
  table.insert(out, redis.call('ZSCORE', KEYS[3], customer) or '')
  table.insert(out, redis.call('HGET', KEYS[5], customer) or '')
end
return out
