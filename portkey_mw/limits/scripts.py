"""The Lua scripts of the Redis backend: each request's check is one atomic round trip.

The caller passes ``now`` (epoch seconds) instead of reading Redis ``TIME``, so that a
test's clock drives Redis as it drives the in-process backend; replicas must therefore
keep their clocks in sync (NTP): a replica ``d`` seconds ahead sees limits refill ``d``
seconds early. Numbers go in and out as ``%.17g`` strings, which round-trip doubles
exactly (Redis would truncate a Lua number reply to an integer), so both backends compute
bit-for-bit the same results as :mod:`portkey_mw.limits.gcra`.

Keys of one subject share a hash tag (``{subject}``), so the multi-key admit script also
runs on Redis Cluster.
"""

from __future__ import annotations

#: A limit's bucket at ``now`` (mirrors ``gcra.drained``): level and time, from a hash
#: {l, t}.
_DRAINED = """
local function drained(key, interval, now)
  local held = redis.call('HMGET', key, 'l', 't')
  if not held[1] then return 0, now end
  local level, last = tonumber(held[1]), tonumber(held[2])
  local elapsed = now - last
  if elapsed < 0 then elapsed = 0 end
  level = level - elapsed / interval
  if level < 0 then level = 0 end
  if last > now then return level, last end
  return level, now
end
local function store(key, level, last, interval, period, now)
  redis.call('HSET', key, 'l', string.format('%.17g', level), 't', string.format('%.17g', last))
  -- kept until the bucket is empty (then it means the same as no key), plus one period
  local ttl = math.ceil((last + level * interval - now + period) * 1000)
  redis.call('PEXPIRE', key, string.format('%d', ttl))
end
"""

#: GCRA over every limit of a request, all or nothing (mirrors ``gcra.evaluate``).
#: KEYS: one bucket per limit. ARGV[1]: now; then per limit: type, period, value.
#: Returns: admitted (1/0), then per limit the level to report and the retry-after
#: ("-1" for a disabled limit).
ADMIT = (
    _DRAINED
    + """
local now = tonumber(ARGV[1])
local n = #KEYS
local allowed = 1
local levels, lasts, afters, retries = {}, {}, {}, {}
for i = 1, n do
  local kind = ARGV[3 * i - 1]
  local period = tonumber(ARGV[3 * i])
  local value = tonumber(ARGV[3 * i + 1])
  if value == 0 then
    allowed = 0
    levels[i], lasts[i], afters[i], retries[i] = 0, now, 0, '-1'
  else
    local interval = period / value
    local level, last = drained(KEYS[i], interval, now)
    local need = level + 1
    levels[i], lasts[i] = level, last
    if need <= value + 1e-6 / interval then
      if kind == 'requests' then afters[i] = need else afters[i] = level end
      retries[i] = '0'
    else
      allowed = 0
      afters[i] = level
      retries[i] = string.format('%.17g', (need - value) * interval)
    end
  end
end
local out = {allowed}
for i = 1, n do
  local level = levels[i]
  if allowed == 1 then
    level = afters[i]
    local value = tonumber(ARGV[3 * i + 1])
    if value ~= 0 then
      local period = tonumber(ARGV[3 * i])
      store(KEYS[i], level, lasts[i], period / value, period, now)
    end
  end
  out[2 * i] = string.format('%.17g', level)
  out[2 * i + 1] = retries[i]
end
return out
"""
)

#: Tokens used, added to token limits' buckets (mirrors ``gcra.charge``).
#: KEYS: one bucket per limit. ARGV[1]: now, ARGV[2]: tokens; then per limit: period,
#: value (never 0).
RECORD_TOKENS = (
    _DRAINED
    + """
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
for i = 1, #KEYS do
  local period = tonumber(ARGV[2 * i + 1])
  local interval = period / tonumber(ARGV[2 * i + 2])
  local level, last = drained(KEYS[i], interval, now)
  store(KEYS[i], level + tokens, last, interval, period, now)
end
return 1
"""
)

#: A budget charge. KEYS[1]: the budget's hash {period, used, alerted, exhausted}.
#: ARGV: period id, amount, alert threshold ('' none), credit limit ('' none), expiry in
#: ms ('0' none), floor ('' none: after a Redis outage, usage becomes at least what the
#: replica counted meanwhile, in case Redis lost it).
#: Returns: used, alert crossed now, exhausted now, alerted flag, exhausted flag.
CHARGE = """
local key = KEYS[1]
if redis.call('HGET', key, 'period') ~= ARGV[1] then
  redis.call('DEL', key)
  redis.call('HSET', key, 'period', ARGV[1])
end
local used = tonumber(redis.call('HGET', key, 'used') or '0') + tonumber(ARGV[2])
if ARGV[6] ~= '' and tonumber(ARGV[6]) > used then used = tonumber(ARGV[6]) end
redis.call('HSET', key, 'used', string.format('%.17g', used))
local alert = 0
if ARGV[3] ~= '' and used >= tonumber(ARGV[3]) and used > 0 then
  alert = redis.call('HSETNX', key, 'alerted', '1')
end
local spent = 0
if ARGV[4] ~= '' and used >= tonumber(ARGV[4]) then
  spent = redis.call('HSETNX', key, 'exhausted', '1')
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', key, ARGV[5]) end
return {string.format('%.17g', used), alert, spent,
        redis.call('HEXISTS', key, 'alerted'), redis.call('HEXISTS', key, 'exhausted')}
"""

#: Persisted usage taken back (see ``LimitBackend.load_usage``).
#: KEYS[1]: the budget's hash. ARGV: period id, used, alerted, exhausted ('1'/'0'), expiry
#: in ms ('0' none). Returns 1 when taken, 0 when another period is held.
LOAD = """
local key = KEYS[1]
local held = redis.call('HGET', key, 'period')
if held and held ~= ARGV[1] then return 0 end
redis.call('HSET', key, 'period', ARGV[1])
local used = tonumber(redis.call('HGET', key, 'used') or '0')
if tonumber(ARGV[2]) > used then redis.call('HSET', key, 'used', ARGV[2]) end
if ARGV[3] == '1' then redis.call('HSET', key, 'alerted', '1') end
if ARGV[4] == '1' then redis.call('HSET', key, 'exhausted', '1') end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', key, ARGV[5]) end
return 1
"""
