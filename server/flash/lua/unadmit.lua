-- Undo admissions whose PostgreSQL claim did not happen: each customer goes back to the
-- place their ticket gives them. refund 1: the token is still free (the claim failed for
-- another reason); 0: PostgreSQL had no free token, so the count was one too high.
-- KEYS: 1 state, 2 wait, 3 slots, 4 free, 5 admits, 6 entries
-- ARGV: 1 refund (1/0), 2 store, then customer, ticket pairs
-- -> {undone, exhausted (1/0)}
local undone = 0
for i = 3, #ARGV, 2 do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    undone = undone + 1
    redis.call('HDEL', KEYS[5], ARGV[i])
    if ARGV[1] == '1' then redis.call('INCR', KEYS[4]) end
    if redis.call('HGET', KEYS[1], 'status') == 'open' then
      redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
    elseif redis.call('HGET', KEYS[6], ARGV[i]) == ARGV[2] then
      redis.call('HDEL', KEYS[6], ARGV[i])
    end
  end
end
return {undone, exhausted(KEYS[1], KEYS[3], KEYS[4])}
