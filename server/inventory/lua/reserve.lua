-- Set the held quantity of each SKU of one holder (cart or order), all lines or none.
-- Idempotent per (holder, sku): the request names the wanted quantity, not a delta, so a
-- retry changes nothing; 0 releases the line. Mode HARD (checkout) also marks the hold
-- HARD and may move it to a new holder id (cart -> order).
-- SOFT holds are journaled: the same atomic step appends the movement to the store's
-- stream (KEYS[6]) and a writer applies it to PostgreSQL in batches; the hold remembers
-- its last entry id in `_sid`. HARD holds are written by the caller with the order, after
-- the writer applied the hold's soft entries (answer field 4: the id to wait for, or '').
-- KEYS: 1 ready, 2 expiry zset, 3 hold, 4 new hold (= 3 when not renaming), 5 inflight,
--       6 journal stream, 7 applied id hint, 8.. inventory hash per line
-- ARGV: 1 mode (SOFT|HARD), 2 holder, 3 new holder, 4 expires_at, 5 now,
--       then sku, qty per line
-- -> {"OK", old_state, old_expires, pending_id, epoch, sku, old, new, ...}
--    | {"SHORT", sku, wanted_more, available, reserved, ...}
--    | {"NOT_READY"} | {"STATE", state} | {"UNKNOWN_SKU", sku}
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'NOT_READY'} end
local mode, holder, new_holder, expires, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- a checkout retried after its hold already moved to the order must not touch it again
if KEYS[4] ~= KEYS[3] and redis.call('EXISTS', KEYS[4]) == 1 then return {'STATE', 'MOVED'} end
local state = redis.call('HGET', KEYS[3], '_state')
if state and state ~= 'SOFT' and not (state == 'HARD' and mode == 'HARD') then
  return {'STATE', state}
end
local n = (#ARGV - 5) / 2
local olds, deltas = {}, {}
local short = {}
for i = 1, n do
  local sku, want = ARGV[4 + 2 * i], tonumber(ARGV[5 + 2 * i])
  local inv = KEYS[7 + i]
  local available = redis.call('HGET', inv, 'available')
  if not available then return {'UNKNOWN_SKU', sku} end
  local old = tonumber(redis.call('HGET', KEYS[3], sku) or '0')
  olds[i], deltas[i] = old, want - old
  if deltas[i] > tonumber(available) then
    table.insert(short, sku); table.insert(short, deltas[i]); table.insert(short, available)
    table.insert(short, redis.call('HGET', inv, 'reserved') or '0')
  end
end
if #short > 0 then
  table.insert(short, 1, 'SHORT')
  return short
end
-- the soft entries of this hold PostgreSQL may not hold yet (HARD waits for them)
local pending = ''
local sid = redis.call('HGET', KEYS[3], '_sid')
if mode == 'HARD' and sid then
  local applied = redis.call('GET', KEYS[7])
  local function parts(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  if not applied then
    pending = sid
  else
    local sm, ss = parts(sid)
    local am, as = parts(applied)
    if sm > am or (sm == am and ss > as) then pending = sid end
  end
end
local changed = false
local out = {'OK', state or '', redis.call('HGET', KEYS[3], '_exp') or '', pending, epoch}
local moved = {}
for i = 1, n do
  local sku, want, d = ARGV[4 + 2 * i], tonumber(ARGV[5 + 2 * i]), deltas[i]
  if d ~= 0 then
    redis.call('HINCRBY', KEYS[7 + i], 'available', -d)
    redis.call('HINCRBY', KEYS[7 + i], 'reserved', d)
    changed = true
    table.insert(moved, sku .. ':' .. olds[i] .. ':' .. want)
  end
  if want == 0 then redis.call('HDEL', KEYS[3], sku) else redis.call('HSET', KEYS[3], sku, want) end
  table.insert(out, sku); table.insert(out, olds[i]); table.insert(out, want)
end
local entry = nil
if mode == 'SOFT' then
  entry = redis.call('XADD', KEYS[6], '*', 'k', 'R', 'h', holder, 't', now, 'x', expires,
    'l', table.concat(moved, ';'))
elseif changed then
  redis.call('INCR', KEYS[5])
end
-- any SKU field left? (the meta fields start with an underscore)
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
if entry then redis.call('HSET', KEYS[3], '_sid', entry) end
redis.call('ZREM', KEYS[2], holder)
if KEYS[4] ~= KEYS[3] then
  redis.call('DEL', KEYS[4])
  redis.call('RENAME', KEYS[3], KEYS[4])
end
redis.call('ZADD', KEYS[2], expires, new_holder)
return out
