-- An exhausted line (no free token, no slot) whose PostgreSQL still has free tokens: the
-- count fell short (a claim raced a rollback). Set it from PostgreSQL, only if the line
-- is still exhausted (then nothing can be changing it).
-- KEYS: 1 state, 2 slots, 3 free
-- ARGV: 1 free tokens in PostgreSQL
-- -> 1 refilled | 0 no longer exhausted
if exhausted(KEYS[1], KEYS[2], KEYS[3]) == 0 then return 0 end
redis.call('SET', KEYS[3], ARGV[1])
return 1
