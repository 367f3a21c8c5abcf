-- Take or renew a background loop's lease: KEYS[1] the lease, ARGV[1] this replica's
-- owner id, ARGV[2] the lease in ms. 1 while this replica holds it, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
