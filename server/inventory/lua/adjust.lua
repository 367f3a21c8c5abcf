-- Move stock between the buckets of one SKU (receipt, damage, cycle count), refusing any
-- change that would leave a bucket negative.
-- KEYS: 1 ready, 2 inventory hash, 3 inflight
-- ARGV: d_available, d_reserved, d_damaged, d_in_transit
-- -> {"OK", available, reserved, damaged, in_transit, epoch} | {"SHORT", bucket, current}
--    | {"NOT_READY"} | {"UNKNOWN_SKU"}
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'NOT_READY'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'UNKNOWN_SKU'} end
local buckets = {'available', 'reserved', 'damaged', 'in_transit'}
local values = redis.call('HMGET', KEYS[2], unpack(buckets))
for i = 1, 4 do
  local v = tonumber(values[i] or '0') + tonumber(ARGV[i])
  if v < 0 then return {'SHORT', buckets[i], values[i] or '0'} end
  values[i] = v
end
for i = 1, 4 do
  if tonumber(ARGV[i]) ~= 0 then redis.call('HINCRBY', KEYS[2], buckets[i], ARGV[i]) end
end
redis.call('INCR', KEYS[3])
return {'OK', values[1], values[2], values[3], values[4], epoch}
