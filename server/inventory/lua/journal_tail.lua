-- The journal's entries after an id, for the writer to hand to PostgreSQL as one JSON
-- text it parses there (no per-entry work in Python): [[id, kind, holder, t, x or
-- outcome, lines, new hold ('1', '0' or '')], ...]. The writer's run starts after the
-- applied-id hint, in the same round trip; the SQL skips what PostgreSQL's offset already
-- holds.
-- KEYS: 1 journal stream, 2 applied id hint
-- ARGV: 1 after ('' = the hint), 2 count, 3 the last id to read (absent or '': the end;
--       the reconciler's consistent look applies only what its Redis read had seen)
-- -> {after, entries read, last id read, json}
local after = ARGV[1]
if after == '' then after = redis.call('GET', KEYS[2]) or '0-0' end
local upto = (ARGV[3] and ARGV[3] ~= '') and ARGV[3] or '+'
local raw = redis.call('XRANGE', KEYS[1], '(' .. after, upto, 'COUNT', ARGV[2])
local out = {}
for _, entry in ipairs(raw) do
  local f, kv = {}, entry[2]
  for j = 1, #kv, 2 do f[kv[j]] = kv[j + 1] end
  if f.k then
    table.insert(out, {entry[1], f.k, f.h, f.t, f.x or f.o, f.l or '', f.n or ''})
  end
end
if #raw == 0 then return {after, 0, after, '[]'} end
-- an empty Lua table encodes as {}
return {after, #raw, raw[#raw][1], #out > 0 and cjson.encode(out) or '[]'}
