-- cooldown.lua: Toloka answered 429; extend the shared cool-down, never shorten it.
--
-- KEYS[1]   the cool-down key (account-wide, or one kind's): a string, the Redis time (µs) it ends at
-- ARGV[1]   the cool-down length in µs
-- ARGV[2]   a time in µs to use instead of redis TIME (tests only), or "" for TIME
-- Returns   the Redis time (µs) the cool-down ends at

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local length = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local ends = now + length
if ends > current then
  redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', math.ceil(length / 1000) + 1)
  return ends
end
return current
