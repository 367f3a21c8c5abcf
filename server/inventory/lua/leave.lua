-- A cart left this store for another: its hold key here becomes a RELEASED tombstone
-- unless a hold is live (settle.lua ends that one and leaves the tombstone itself), so a
-- line change from a process whose copy of the cart still names this store is refused
-- here (reserve.lua), and answered from the cart's row, rather than held at this store.
-- KEYS: 1 hold; ARGV: 1 tombstone ttl s -> 1 (a tombstone written) | 0 (a hold is here)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], '_state', 'RELEASED')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
