-- The reconciler's consistent look at the parts of a store its quick look doubted, in one
-- atomic step: the synchronous stock changes in flight, the journal's last id (the books
-- are brought exactly this far before they are compared), and the buckets and holds.
-- KEYS: 1 inflight, 2 journal stream, then an inventory hash per SKU, then a hold per holder
-- ARGV: 1 the number of SKUs
-- -> {inflight, last journal id ('0-0': empty), {available, reserved, damaged, in_transit}
--     per SKU (nil fields: no such hash), then the hold's fields and values per holder}
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local out = {tonumber(redis.call('GET', KEYS[1]) or '0'), #last > 0 and last[1][1] or '0-0'}
local n = tonumber(ARGV[1])
for i = 3, 2 + n do
  out[#out + 1] = redis.call('HMGET', KEYS[i], 'available', 'reserved', 'damaged', 'in_transit')
end
for i = 3 + n, #KEYS do
  out[#out + 1] = redis.call('HGETALL', KEYS[i])
end
return out
