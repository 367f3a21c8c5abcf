-- Circuit breaker state shared by every API replica. Time comes from the caller's server
-- clock; no TTL decides anything. The generation ``gen`` moves on every state change, so
-- an outcome of a call admitted under an older state is ignored.
-- KEYS: 1 state hash (state, gen, open_until, seq), 2 outcome window zset, 3 trial token
-- ARGV 'before': 2 now, 3 trial token, 4 trial deadline
--   -> {'ALLOW', gen} | {'TRIAL', gen} | {'OPEN', retry_after_s}
-- ARGV 'record': 2 now, 3 success 1/0, 4 gen, 5 trial token or '', 6 window_s,
--   7 window_calls, 8 min_calls, 9 failure_ratio, 10 open_s
--   -> {'RECORDED', calls, failures} | {'OPENED', open_until} | {'CLOSED'} | {'IGNORED'}
local op, now = ARGV[1], tonumber(ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')

local function trial_parts(value)
  local deadline, token = string.match(value, '^(%S+) (.+)$')
  return tonumber(deadline), token
end

local function open(open_until)
  redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1, 'open_until', open_until)
  redis.call('DEL', KEYS[2], KEYS[3])
  return {'OPENED', tostring(open_until)}
end

if op == 'before' then
  if state == 'closed' then return {'ALLOW', gen} end
  if state == 'open' then
    local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
    if now < open_until then return {'OPEN', tostring(open_until - now)} end
    gen = gen + 1
    redis.call('HSET', KEYS[1], 'state', 'half_open', 'gen', gen)
  end
  -- half-open: one trial at a time; a trial whose caller vanished lapses at its deadline
  local held = redis.call('GET', KEYS[3])
  if held and trial_parts(held) <= now then redis.call('DEL', KEYS[3]) end
  if redis.call('SET', KEYS[3], ARGV[4] .. ' ' .. ARGV[3], 'NX') then return {'TRIAL', gen} end
  -- another caller's trial is in flight; its answer is due within the gateway timeout
  return {'OPEN', '1'}
end

local success = ARGV[3] == '1'
if ARGV[5] ~= '' then
  local held = redis.call('GET', KEYS[3])
  if not held or select(2, trial_parts(held)) ~= ARGV[5] then return {'IGNORED'} end
  if not success then return open(now + tonumber(ARGV[10])) end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen + 1)
  redis.call('DEL', KEYS[2], KEYS[3])
  return {'CLOSED'}
end
if state ~= 'closed' or tonumber(ARGV[4]) ~= gen then return {'IGNORED'} end

local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], ARGV[2], seq .. (success and ':ok' or ':fail'))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[6])))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[7]) + 1))
local calls, failures = 0, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  calls = calls + 1
  if string.sub(member, -5) == ':fail' then failures = failures + 1 end
end
if calls >= tonumber(ARGV[8]) and failures >= tonumber(ARGV[9]) * calls then
  return open(now + tonumber(ARGV[10]))
end
return {'RECORDED', calls, failures}
