-- Announce admissions whose PostgreSQL claims committed: each customer still holding the
-- slot gets its admission number (until then their status reads "admitting").
-- KEYS: 1 slots, 2 admits
-- ARGV: customer, 'admit_no:ticket' pairs
-- -> how many were announced
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
