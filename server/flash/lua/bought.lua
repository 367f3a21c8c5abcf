-- Record how many units customers bought in a sale (their SOLD tokens, as PostgreSQL
-- counted them in the transaction that sold one). A count only ever grows, so an older
-- count arriving late never lowers a newer one.
-- KEYS: 1 bought
-- ARGV: customer, count pairs
-- -> how many counts rose
local rose = 0
for i = 1, #ARGV, 2 do
  if tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    rose = rose + 1
  end
end
return rose
