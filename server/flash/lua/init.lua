-- Load one store's line of a sale from PostgreSQL: on first use, or after Redis lost it
-- (then the waiting line is gone and customers join again; slots and counts come back).
-- Does nothing if the line is already loaded.
-- KEYS: 1 state, 2 slots, 3 free, 4 entries, 5 admits, 6 tickets, 7 admitted
-- ARGV: 1 status (open/closed), 2 reason, 3 units, 4 free tokens, 5 slot seconds,
--       6 store, 7 highest ticket, 8 highest admission, 9 started (1, or 0: the sale has
--       not started, joins wait in the waiting room), then customer, expiry,
--       'admit_no:ticket'
-- -> 1 loaded | 0 already there
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
for i = 10, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[6])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 2])
end
redis.call('SET', KEYS[3], ARGV[4])
for k, floor in pairs({[6] = ARGV[7], [7] = ARGV[8]}) do
  if tonumber(redis.call('GET', KEYS[k]) or '0') < tonumber(floor) then
    redis.call('SET', KEYS[k], floor)
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'units', ARGV[3],
  'avg_slot_s', tostring(tonumber(ARGV[5]) / 2), 'started', ARGV[9])
return 1
