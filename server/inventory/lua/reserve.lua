-- Set the held quantity of each SKU of one holder (cart or order), all lines or none.
-- Idempotent per (holder, sku): the request names the wanted quantity, not a delta, so a
-- retry changes nothing; 0 releases the line. Mode HARD (checkout) also marks the hold
-- HARD and may move it to a new holder id (cart -> order).
-- KEYS: 1 ready, 2 expiry zset, 3 hold, 4 new hold (= 3 when not renaming), 5 inflight,
--       6.. inventory hash per line
-- ARGV: 1 mode (SOFT|HARD), 2 holder, 3 new holder, 4 expires_at, then sku, qty per line
-- -> {"OK", old_state, old_expires, sku, old, new, ...}
--    | {"SHORT", sku, wanted_more, available, ...}
--    | {"NOT_READY"} | {"STATE", state} | {"UNKNOWN_SKU", sku}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_READY'} end
local mode, holder, new_holder, expires = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- a checkout retried after its hold already moved to the order must not touch it again
if KEYS[4] ~= KEYS[3] and redis.call('EXISTS', KEYS[4]) == 1 then return {'STATE', 'MOVED'} end
local state = redis.call('HGET', KEYS[3], '_state')
if state and state ~= 'SOFT' and not (state == 'HARD' and mode == 'HARD') then
  return {'STATE', state}
end
local n = (#ARGV - 4) / 2
local olds, deltas = {}, {}
local short = {}
for i = 1, n do
  local sku, want = ARGV[3 + 2 * i], tonumber(ARGV[4 + 2 * i])
  local inv = KEYS[5 + i]
  local available = redis.call('HGET', inv, 'available')
  if not available then return {'UNKNOWN_SKU', sku} end
  local old = tonumber(redis.call('HGET', KEYS[3], sku) or '0')
  olds[i], deltas[i] = old, want - old
  if deltas[i] > tonumber(available) then
    table.insert(short, sku); table.insert(short, deltas[i]); table.insert(short, available)
  end
end
if #short > 0 then
  table.insert(short, 1, 'SHORT')
  return short
end
local changed = false
local out = {'OK', state or '', redis.call('HGET', KEYS[3], '_exp') or ''}
for i = 1, n do
  local sku, want, d = ARGV[3 + 2 * i], tonumber(ARGV[4 + 2 * i]), deltas[i]
  if d ~= 0 then
    redis.call('HINCRBY', KEYS[5 + i], 'available', -d)
    redis.call('HINCRBY', KEYS[5 + i], 'reserved', d)
    changed = true
  end
  if want == 0 then redis.call('HDEL', KEYS[3], sku) else redis.call('HSET', KEYS[3], sku, want) end
  table.insert(out, sku); table.insert(out, olds[i]); table.insert(out, want)
end
if changed then redis.call('INCR', KEYS[5]) end
-- any SKU field left? (the two meta fields start with an underscore)
local left = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[3])) do
  if string.sub(f, 1, 1) ~= '_' then left = left + 1 end
end
if left == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[2], holder)
  return out
end
redis.call('HSET', KEYS[3], '_state', mode, '_exp', expires)
redis.call('ZREM', KEYS[2], holder)
if KEYS[4] ~= KEYS[3] then
  redis.call('DEL', KEYS[4])
  redis.call('RENAME', KEYS[3], KEYS[4])
end
redis.call('ZADD', KEYS[2], expires, new_holder)
return out
