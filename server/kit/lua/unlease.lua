-- Give a lease back: KEYS[1] the lease, ARGV[1] this replica's owner id. Deletes it only
-- while this replica still holds it (1), else 0.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
