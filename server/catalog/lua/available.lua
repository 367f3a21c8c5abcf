-- The available units of some SKUs of one store, in the order asked (one round trip per
-- page; every key carries the store's hash tag, so one cluster slot).
-- KEYS: inv:{S}:<sku> ...   ->  { available or false, ... }
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HGET', key, 'available')
end
return out
