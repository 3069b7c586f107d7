-- acquire.lua: check and debit every limit of one request, all or nothing, on Redis's clock.
-- The sliding-window rule and why it holds: gateway/ratelimit/window.py.
--
-- KEYS[1]        the account-wide Toloka cool-down: a string, the Redis time (µs) it ends at
-- KEYS[2]        the cool-down of the request's kind (same format; usually absent)
-- KEYS[3..n+2]   one hash per limit: "s" = units in live buckets, "o" = oldest live bucket
--                index, "<index>" = units admitted in bucket <index> (index = time_us // width),
--                "f" = the oldest bucket holding units, when last asked (see frees_in)
-- ARGV[1]        a time in µs to use instead of redis TIME (tests only), or "" for TIME
-- ARGV[2]        n, the number of limits
-- ARGV[3..]      4 values per limit i, in KEYS order: capacity, cost, bucket width µs, span
--                (how many buckets, the current one included, a decision counts); a negative
--                capacity -C is a trial shadow limit of capacity C: it never refuses, and is debited
--                only when the cost fits (its remaining is negative, and it is not debited, when not)
-- ARGV[4n+3]     optional "1": an admission also reports, per limit, the µs until its window
--                frees its next unit (the oldest counted bucket leaves the span)
-- Returns        admitted: {1, now_us, remaining_1, ..., remaining_n}  (all limits debited),
--                followed by frees_in_us_1, ..., frees_in_us_n when ARGV[4n+3] is "1"
--                refused:  {0, now_us, i, retry_after_us, j, retry_after_us, ...}  (none debited)
--                          one pair per refusing limit; i = 0 is the cool-down;
--                          retry_after_us = -1 when the cost exceeds the whole capacity
--
-- Debit mode (write-back after a degraded spell: admissions a replica made without Redis):
-- ARGV[2]        "debit"
-- ARGV[3]        n, the number of limits (KEYS as above; KEYS[1] and KEYS[2] are not read)
-- ARGV[4..]      per limit i: bucket width µs, span, m, then m pairs (age_us, units): add
--                `units` to the bucket of time now_us - age_us, unchecked (buckets that have
--                already left the span are skipped)
-- Returns        {now_us}
--
-- Peek mode (GetQuota: read every limit and the cool-downs, change nothing):
-- ARGV[2]        "peek"
-- ARGV[3]        n, the number of limits (KEYS as above)
-- ARGV[4..]      3 values per limit i: capacity, bucket width µs, span
-- Returns        {now_us, cooldown_us, used_1, wait_us_1, ..., used_n, wait_us_n}: the µs left of
--                the later cool-down (0: none), then per limit the units counted and the µs until
--                one more unit fits (0 when one fits now; as an admission's retry_after)

local function fmt(n)
  return string.format('%d', n)
end

local function clock_us()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The units still counted at `lo`, read without writing, and what eviction must drop: nothing
-- (nil), the whole key ('all'), or the listed fields of buckets older than `lo`. Every write
-- sets "o" to the writer's `lo`, so live buckets always lie in [o, o + span - 1].
local function live(key, lo, span)
  local head = redis.call('HMGET', key, 's', 'o')
  local total, oldest = tonumber(head[1]) or 0, tonumber(head[2])
  if oldest == nil or oldest >= lo then
    return total, nil
  end
  if lo - oldest >= span then
    return 0, 'all'
  end
  local fields = {}
  for b = oldest, lo - 1 do
    fields[#fields + 1] = fmt(b)
  end
  local counts = redis.call('HMGET', key, unpack(fields))
  for k = 1, #fields do
    if counts[k] then
      total = total - tonumber(counts[k])
    end
  end
  return total, fields
end

-- Drop buckets older than `lo`; return the units still counted.
local function evict(key, lo, span)
  local total, gone = live(key, lo, span)
  if gone == 'all' then
    redis.call('DEL', key)
  elseif gone then
    redis.call('HDEL', key, unpack(gone))
    redis.call('HSET', key, 's', fmt(total), 'o', fmt(lo))
  end
  return total
end

-- µs until the oldest buckets holding at least `need` units have left the span.
local function retry_after(key, lo, current, need, width, span, now)
  local fields = {}
  for b = lo, current do
    fields[#fields + 1] = fmt(b)
  end
  local counts = redis.call('HMGET', key, unpack(fields))
  local freed = 0
  for k = 1, #fields do
    freed = freed + (tonumber(counts[k]) or 0)
    if freed >= need then
      return math.max(0, (lo + k - 1 + span) * width - now)
    end
  end
  return math.max(0, (current + span) * width - now)
end

-- µs until the oldest counted bucket leaves the span. Its index is kept in "f" once found: a
-- bucket older than it is never written again (admissions write the current bucket; the debit
-- mode drops "f"), so it stays right until that bucket is evicted, and each rescan starts past
-- the buckets already seen empty.
local function frees_in(key, lo, current, width, span, now)
  local f = tonumber(redis.call('HGET', key, 'f'))
  if f == nil or f < lo or redis.call('HEXISTS', key, fmt(f)) == 0 then
    f = current
    for b = lo, current do
      if redis.call('HEXISTS', key, fmt(b)) == 1 then
        f = b
        break
      end
    end
    redis.call('HSET', key, 'f', fmt(f))
  end
  return math.max(0, (f + span) * width - now)
end

local function debit()
  local now = clock_us()
  local n = tonumber(ARGV[3])
  local a = 4
  for i = 1, n do
    local key = KEYS[i + 2]
    local width, span, m = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local current = math.floor(now / width)
    local lo = current - span + 1
    local total = evict(key, lo, span)
    local added = 0
    for _ = 1, m do
      local age, units = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
      a = a + 2
      local b = math.floor((now - math.max(0, age)) / width)
      if b >= lo and units > 0 then
        redis.call('HINCRBY', key, fmt(b), units)
        added = added + units
      end
    end
    if added > 0 then
      redis.call('HDEL', key, 'f')  -- a bucket older than the one "f" names may hold units now
      redis.call('HSET', key, 's', fmt(total + added), 'o', fmt(lo))
      redis.call('PEXPIRE', key, math.ceil(span * width / 1000) + 1)
    end
  end
  return {now}
end

local function peek()
  local now = clock_us()
  local cooldowns = redis.call('MGET', KEYS[1], KEYS[2])
  local cooldown_until = math.max(tonumber(cooldowns[1] or '0'), tonumber(cooldowns[2] or '0'))
  local out = {now, math.max(0, cooldown_until - now)}
  for i = 1, tonumber(ARGV[3]) do
    local a = 4 + 3 * (i - 1)
    local cap, width, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local key = KEYS[i + 2]
    local current = math.floor(now / width)
    local lo = current - span + 1
    local used = live(key, lo, span)
    local wait = 0
    if used + 1 > cap then
      wait = retry_after(key, lo, current, used + 1 - cap, width, span, now)
    end
    out[#out + 1] = used
    out[#out + 1] = wait
  end
  return out
end

if ARGV[2] == 'debit' then
  return debit()
end
if ARGV[2] == 'peek' then
  return peek()
end

local now = clock_us()
local cooldowns = redis.call('MGET', KEYS[1], KEYS[2])
local cooldown_until = math.max(tonumber(cooldowns[1] or '0'), tonumber(cooldowns[2] or '0'))
if cooldown_until > now then
  return {0, now, 0, cooldown_until - now}
end

local n = tonumber(ARGV[2])
local plan = {}
local refused = {0, now}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  local cap, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local width, span = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local current = math.floor(now / width)
  local lo = current - span + 1
  local total = evict(KEYS[i + 2], lo, span)
  local trial = cap < 0
  if trial then
    cap = -cap
  end
  local fits = total + cost <= cap
  plan[i] = {cap, cost, width, span, current, lo, total, fits}
  if not fits and not trial then
    local wait = -1
    if cost <= cap then
      wait = retry_after(KEYS[i + 2], lo, current, total + cost - cap, width, span, now)
    end
    refused[#refused + 1] = i
    refused[#refused + 1] = wait
  end
end
if #refused > 2 then
  return refused
end

local admitted = {1, now}
for i = 1, n do
  local p, key = plan[i], KEYS[i + 2]
  local cap, cost, width, span, current, lo, total = p[1], p[2], p[3], p[4], p[5], p[6], p[7]
  if p[8] then
    redis.call('HINCRBY', key, fmt(current), cost)
    redis.call('HSET', key, 's', fmt(total + cost), 'o', fmt(lo))
    redis.call('PEXPIRE', key, math.ceil(span * width / 1000) + 1)
  end
  admitted[#admitted + 1] = cap - total - cost
end
if ARGV[4 * n + 3] == '1' then
  for i = 1, n do
    local p = plan[i]
    admitted[#admitted + 1] = frees_in(KEYS[i + 2], p[6], p[5], p[3], p[4], now)
  end
end
return admitted
