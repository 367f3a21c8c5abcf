-- Set the held quantity of each SKU of one or more holders (carts or orders), each
-- holder's lines all or none, the holders one after the other as calls of their own
-- would run (several: the SOFT calls of one store in one event-loop turn, sent as one).
-- Idempotent per (holder, sku): the request names the wanted quantity, not a delta, so a
-- retry changes nothing; 0 releases the line. Mode HARD (checkout) also marks the hold
-- HARD and may move it to a new holder id (cart -> order).
-- SOFT holds are journaled: the same atomic step appends each holder's movement to the
-- store's stream (KEYS[4]) and a writer applies it to PostgreSQL in batches; the hold
-- remembers its last entry id in `_sid`. HARD holds are written by the caller with the
-- order, after the writer applied the hold's soft entries (answer field 4: the id to wait
-- for, or '').
-- A move (cart -> order) takes the hold exactly as the caller read and priced it: a cart's
-- line changes take no lock against its checkout, so a hold that changed since (a line
-- added, removed or set) is refused as STALE and the caller reads it again.
-- A moved hold's mark, and a released hold's tombstone, refuse changes (a line change
-- racing its cart's checkout, or meant for the store the cart left) unless the call names
-- that state as one it starts the hold over from (ARGV `over`: a cart given back after a
-- declined payment, or a flash token taking its unit back, starts over a MOVED mark; a
-- cart moved between stores over a RELEASED tombstone).
-- KEYS: 1 ready, 2 expiry zset, 3 inflight, 4 journal stream, 5 applied id hint,
--       then per holder: hold, new hold (= hold when not renaming), inventory hash per line
-- ARGV: 1 mode (SOFT|HARD), then per holder: holder, new holder, expires_at, now,
--       over (states the hold may start over from, comma-separated, or ''), line count,
--       then sku, qty per line (qty, or "qty@held" for a rolled back change's undo: set
--       only if the line still holds `held`)
-- -> one answer per holder:
--    {"OK", old_state, old_expires, pending_id, epoch, held, sku, old, new, ...}
--    (held: the hold's lines after the change, "sku:qty;..." or '' when it holds nothing,
--    so a caller answering with the hold never reads it back)
--    | {"SHORT", sku, wanted_more, available, reserved, ...}
--    | {"NOT_READY"} | {"STATE", state} | {"UNKNOWN_SKU", sku}
--    (state MOVED_AWAY: the hold was moved to another holder by a move that died;
--    STALE: a move's lines are not the hold's)
local epoch = redis.call('GET', KEYS[1])
local mode = ARGV[1]

local function after(id, applied)
  local sm, ss = string.match(id, '^(%d+)-(%d+)$')
  local am, as = string.match(applied, '^(%d+)-(%d+)$')
  sm, ss, am, as = tonumber(sm), tonumber(ss), tonumber(am), tonumber(as)
  return sm > am or (sm == am and ss > as)
end

-- one holder: its keys from KEYS[k], its arguments from ARGV[a]
local function reserve(k, a)
  local hold, moved_to = KEYS[k], KEYS[k + 1]
  local holder, new_holder, expires, now = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local over, n = ARGV[a + 4], tonumber(ARGV[a + 5])
  -- a checkout retried after its hold already moved to the order must not touch it again
  -- (a hold moved back over the mark a move left, e.g. order -> flash token, may)
  if moved_to ~= hold and redis.call('EXISTS', moved_to) == 1
    and redis.call('HGET', moved_to, '_state') ~= 'MOVED' then
    return {'STATE', 'MOVED'}
  end
  -- the hold in one read: its meta fields (underscored) and its lines
  local fields = {}
  local raw = redis.call('HGETALL', hold)
  for j = 1, #raw, 2 do fields[raw[j]] = raw[j + 1] end
  local new = #raw == 0  -- no hold at all (not even a moved hold's mark)
  local state = fields._state
  -- moving a moved hold on to another holder: an earlier move died before its commit
  -- (the caller's retry waits for the reconciler to put the hold back from the books)
  if state == 'MOVED' and moved_to ~= hold then return {'STATE', 'MOVED_AWAY'} end
  if state and moved_to == hold and over ~= ''
    and string.find(',' .. over .. ',', ',' .. state .. ',', 1, true) then
    redis.call('DEL', hold)  -- the mark or tombstone goes; the hold starts afresh
    state, fields = nil, {}
  end
  if state and state ~= 'SOFT' and not (state == 'HARD' and mode == 'HARD') then
    return {'STATE', state}
  end
  if moved_to ~= hold then
    local given = {}
    for i = 1, n do given[ARGV[a + 4 + 2 * i]] = tonumber(ARGV[a + 5 + 2 * i]) end
    for f, v in pairs(fields) do
      if string.sub(f, 1, 1) ~= '_' then
        if given[f] ~= tonumber(v) then return {'STATE', 'STALE'} end
        given[f] = nil
      end
    end
    if next(given) then return {'STATE', 'STALE'} end
  end
  local skus, wants, olds, deltas, stock = {}, {}, {}, {}, {}
  local short = {}
  for i = 1, n do
    local sku, asked = ARGV[a + 4 + 2 * i], ARGV[a + 5 + 2 * i]
    local buckets = redis.call('HMGET', KEYS[k + 1 + i], 'available', 'reserved')
    if not buckets[1] then return {'UNKNOWN_SKU', sku} end
    local available = tonumber(buckets[1])
    local old = tonumber(fields[sku] or '0')
    local want = tonumber(asked)
    if not want then
      -- "qty@held" (an undo's line): qty only while the line still holds what the undone
      -- change set; a change of it since stands, and so does the hold's expiry
      local undo_to, undo_if = string.match(asked, '^(%d+)@(%d+)$')
      if tonumber(undo_if) == old then
        want = tonumber(undo_to)
      else
        want, expires = old, fields._exp or expires
      end
    end
    skus[i], wants[i], olds[i], deltas[i] = sku, want, old, want - old
    stock[i] = {available, tonumber(buckets[2] or '0')}
    if deltas[i] > available then
      table.insert(short, sku); table.insert(short, deltas[i]); table.insert(short, buckets[1])
      table.insert(short, buckets[2] or '0')
    end
  end
  if #short > 0 then
    table.insert(short, 1, 'SHORT')
    return short
  end
  -- the soft entries of this hold PostgreSQL may not hold yet (HARD waits for them)
  local pending = ''
  local sid = fields._sid
  if mode == 'HARD' and sid then
    local applied = redis.call('GET', KEYS[5])
    if not applied or after(sid, applied) then pending = sid end
  end
  local changed = false
  local out = {'OK', state or '', fields._exp or '', pending, epoch, ''}
  local moved, set, unset = {}, {}, {}
  -- SKU fields the hold keeps (its meta fields start with an underscore)
  local left, kept = 0, {}  -- kept: the hold's lines after the change
  for f, v in pairs(fields) do
    if string.sub(f, 1, 1) ~= '_' then left = left + 1; kept[f] = v end
  end
  for i = 1, n do
    local sku, want, d = skus[i], wants[i], deltas[i]
    if d ~= 0 then
      -- the stock read above, less the change (one write for both buckets)
      redis.call('HSET', KEYS[k + 1 + i], 'available', stock[i][1] - d,
        'reserved', stock[i][2] + d)
      changed = true
      table.insert(moved, sku .. ':' .. olds[i] .. ':' .. want)
    end
    if fields[sku] then left = left - 1 end
    if want == 0 then
      if fields[sku] then table.insert(unset, sku) end
      kept[sku] = nil
    else
      left = left + 1
      table.insert(set, sku); table.insert(set, want)
      kept[sku] = want
    end
    table.insert(out, sku); table.insert(out, olds[i]); table.insert(out, want)
  end
  local entry = nil
  if mode == 'SOFT' then
    -- n: a new hold, so the books hold no other line of it whose expiry the writer
    -- would move (it skips that look)
    entry = redis.call('XADD', KEYS[4], '*', 'k', 'R', 'h', holder, 't', now, 'x', expires,
      'l', table.concat(moved, ';'), 'n', new and '1' or '0')
  elseif changed then
    redis.call('INCR', KEYS[3])
  end
  local held = {}
  for sku, q in pairs(kept) do table.insert(held, sku .. ':' .. q) end
  out[6] = table.concat(held, ';')
  if left == 0 then
    redis.call('DEL', hold)
    redis.call('ZREM', KEYS[2], holder)
    return out
  end
  if #unset > 0 then redis.call('HDEL', hold, unpack(unset)) end
  table.insert(set, '_state'); table.insert(set, mode)
  table.insert(set, '_exp'); table.insert(set, expires)
  if entry then table.insert(set, '_sid'); table.insert(set, entry) end
  redis.call('HSET', hold, unpack(set))
  if moved_to ~= hold then
    redis.call('ZREM', KEYS[2], holder)
    redis.call('DEL', moved_to)
    redis.call('RENAME', hold, moved_to)
    -- the cart remembers its hold moved: a checkout after this one's transaction died
    -- (before the reconciler put the hold back, every 30 s) is told to retry, not that it
    -- is empty; 5 minutes outlive the repair and keep a city's peak to ~70,000 marks
    redis.call('HSET', hold, '_state', 'MOVED', '_to', new_holder)
    redis.call('EXPIRE', hold, 300)
  end
  -- (a member's score is replaced: the hold's expiry moves with each change)
  redis.call('ZADD', KEYS[2], expires, new_holder)
  return out
end

local answers = {}
local k, a = 6, 2
while a <= #ARGV do
  local n = tonumber(ARGV[a + 5])
  answers[#answers + 1] = epoch and reserve(k, a) or {'NOT_READY'}
  k, a = k + 2 + n, a + 6 + 2 * n
end
return answers
