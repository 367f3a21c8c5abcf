-- Hits of limits' moving window (its acquire_moving_window.lua with amount 1) for several
-- windows in one call, in order, as separate calls would count them: KEYS[i] a window (a
-- list of hit times, newest first), ARGV[1] now (s), ARGV[2i] its limit, ARGV[2i+1] its
-- length (s). Answers 1 (counted) or 0 (over the limit) per key.
local now = tonumber(ARGV[1])
local answers = {}
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    local oldest = limit >= 1 and redis.call('lindex', key, limit - 1)
    if limit < 1 or (oldest and tonumber(oldest) >= now - expiry) then
        answers[i] = 0
    else
        redis.call('lpush', key, ARGV[1])
        redis.call('ltrim', key, 0, limit - 1)
        redis.call('expire', key, expiry)
        answers[i] = 1
    end
end
return answers
