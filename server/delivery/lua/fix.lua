-- Take a rider's fixes (sorted by time): a fix not newer than the last one is a duplicate;
-- the newest moves the rider in the city's GEO index and becomes the last fix; a fix at
-- least ``sample`` after the last one sampled is appended to the city's history stream
-- (written to PostgreSQL in batches). One atomic step: two fixes of one rider arriving at
-- once (socket and offline replay) cannot both pass the duplicate check.
-- With a 4th key (the rider's track hash, ``server.delivery.tracking``) the fixes are taken
-- only when it is there and says on duty, and it comes back with the answer: the fan-out
-- needs no other read.
-- KEYS: 1 the rider's fix hash, 2 the city's GEO index, 3 the city's history stream,
--       4 (optional) the rider's track hash
-- ARGV: 1 rider id, 2 sample (microseconds), then per fix 7 values:
--       microseconds, RFC 3339 time, lat, lng, speed ('' unknown), battery ('' unknown),
--       accuracy ('' unknown)
-- -> {accepted, duplicates, previous fix (microseconds, '' if none)[, duty, rows]};
--    {-1}: no track hash (nothing taken), {-2}: off duty (nothing taken)
local rider, sample = ARGV[1], tonumber(ARGV[2])
local duty, rows = nil, nil
if KEYS[4] then
  local track = redis.call('HMGET', KEYS[4], 'duty', 'rows')
  duty, rows = track[1], track[2]
  if not duty then return {-1} end
  if duty == 'off' then return {-2} end
end
local previous = redis.call('HGET', KEYS[1], 'us')
local last = tonumber(previous or '-1')
local rec_us = redis.call('HGET', KEYS[1], 'rec') or ''
local rec = tonumber(rec_us) or -1
local accepted, duplicates, newest = 0, 0, nil
for i = 3, #ARGV, 7 do
  local us = tonumber(ARGV[i])
  if us <= last then
    duplicates = duplicates + 1
  else
    accepted, last, newest = accepted + 1, us, i
    if rec < 0 or us - rec >= sample then
      redis.call('XADD', KEYS[3], '*', 'r', rider, 'us', ARGV[i], 'lat', ARGV[i + 2],
        'lng', ARGV[i + 3], 'v', ARGV[i + 4], 'acc', ARGV[i + 6])
      rec, rec_us = us, ARGV[i]
    end
  end
end
if newest then
  local i = newest
  redis.call('GEOADD', KEYS[2], ARGV[i + 3], ARGV[i + 2], rider)
  redis.call('HSET', KEYS[1], 'us', ARGV[i], 'at', ARGV[i + 1], 'lat', ARGV[i + 2],
    'lng', ARGV[i + 3], 'speed', ARGV[i + 4], 'acc', ARGV[i + 6], 'rec', rec_us)
  if ARGV[i + 5] ~= '' then redis.call('HSET', KEYS[1], 'battery', ARGV[i + 5]) end
end
if duty then return {accepted, duplicates, previous or '', duty, rows} end
return {accepted, duplicates, previous or ''}
