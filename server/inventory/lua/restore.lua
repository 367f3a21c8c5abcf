-- Compensation: put a hold and the stock buckets back exactly as they were before a change
-- whose PostgreSQL write failed. Skipped when the store is not loaded, or was loaded again
-- since the change (another epoch): the rebuild from PostgreSQL, where the change was
-- rolled back, is then the repair.
-- KEYS: 1 ready, 2 expiry zset, 3 hold to restore, 4 hold to drop (the renamed one, or =3),
--       5.. inventory hash per line
-- ARGV: 1 epoch the change saw ('' = any), 2 holder to restore ('' = touch no hold),
--       3 holder to drop, 4 state ('' = no hold), 5 expires_at, then per line: sku,
--       held qty, d_available, d_reserved, d_damaged, d_in_transit
local epoch = redis.call('GET', KEYS[1])
if not epoch then return 'SKIPPED' end
if ARGV[1] ~= '' and ARGV[1] ~= epoch then return 'SKIPPED' end
local holder, drop, state, expires = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = 5
local n = (#ARGV - base) / 6
if holder ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[2], drop)
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[2], holder)
  if state ~= '' then
    for i = 1, n do
      local held = tonumber(ARGV[base + 6 * (i - 1) + 2])
      if held > 0 then redis.call('HSET', KEYS[3], ARGV[base + 6 * (i - 1) + 1], held) end
    end
    redis.call('HSET', KEYS[3], '_state', state, '_exp', expires)
    if state == 'SOFT' or state == 'HARD' then redis.call('ZADD', KEYS[2], expires, holder) end
  end
end
local buckets = {'available', 'reserved', 'damaged', 'in_transit'}
for i = 1, n do
  for b = 1, 4 do
    local d = tonumber(ARGV[base + 6 * (i - 1) + 2 + b])
    if d ~= 0 then redis.call('HINCRBY', KEYS[4 + i], buckets[b], d) end
  end
end
return 'RESTORED'
