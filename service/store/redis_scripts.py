"""The Lua scripts behind the Redis backend: each check-and-count is one script.

Redis runs a script alone, start to end, so a script that reads a window and adds to it
cannot interleave with another replica's: that is what makes a limit exact across
replicas, in one round trip (EVALSHA), never read-then-write from the client. Time is
the Redis server's (`TIME`), one clock for every replica. Times are milliseconds.

Per API key (hash-tagged `{id}` so that one key's state stays in one cluster slot):
- `sy:{id}:win`   sorted set of the last minute's requests, member "<uid>:<tokens>"
- `sy:{id}:tok`   the tokens counted in the window
- `sy:{id}:lease` sorted set of concurrency leases, scored by their expiry
- `sy:{id}:spent` hash: spending per period ("all", "d:...", "w:...", "m:...")
- `sy:{id}:holds` hash: credit holds, "<amount>|<period>" by hold id
- `sy:{id}:hexp`  sorted set: each hold's expiry
- `sy:{id}:held`  hash: the sum of the holds per period
The period fields of `spent` and `held` are pruned as new periods are seeded (see
_PRUNE_PERIODS): a key used for years keeps a few, not one per day it was used.
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: win, lease, tok. ARGV: rpm, tpm, max_concurrent (-1: none), tokens, uid, ttl,
# window. -> {admitted 1|0, what, wait_ms, count, tokens, oldest_ms, now_ms}
# The window's token total is kept in `tok` and lowered as entries leave the window, so
# an admission costs the entries it prunes, not the whole window.
_ADMIT = """
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, uid, ttl, window = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local count, total, oldest = 0, 0, now
if rpm >= 0 or tpm >= 0 then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if #gone > 0 then
    local freed = 0
    for i = 1, #gone do freed = freed + tonumber(string.match(gone[i], ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    redis.call('DECRBY', KEYS[3], freed)
  end
  count = redis.call('ZCARD', KEYS[1])
  if count == 0 then redis.call('SET', KEYS[3], 0) end
  total = tonumber(redis.call('GET', KEYS[3]) or '0')
  if count > 0 then oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) end
  if rpm >= 0 and count >= rpm then
    return {0, 'rpm', oldest + window - now, count, total, oldest, now}
  end
  if tpm >= 0 and total + tokens > tpm then
    local wait = window
    if tokens <= tpm then  -- refused: walk the window (oldest first) for when it fits
      local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
      local left = total
      for i = 1, #entries, 2 do
        left = left - tonumber(string.match(entries[i], ':(%d+)$'))
        if left + tokens <= tpm then
          wait = tonumber(entries[i + 1]) + window - now
          break
        end
      end
    end
    return {0, 'tpm', wait, count, total, oldest, now}
  end
end
if maxc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= maxc then
    return {0, 'concurrency', 1000, count, total, oldest, now}
  end
  redis.call('ZADD', KEYS[2], now + ttl, uid)
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
end
if rpm >= 0 or tpm >= 0 then
  redis.call('ZADD', KEYS[1], now, uid .. ':' .. tokens)
  redis.call('INCRBY', KEYS[3], tokens)
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  redis.call('PEXPIRE', KEYS[3], window + 1000)
  count = count + 1
  total = total + tokens
end
return {1, '', 0, count, total, oldest, now}
"""
ADMIT = _NOW + _ADMIT

# KEYS: win, tok. ARGV: window. -> {count, tokens, oldest_ms, now_ms} (reads only; the
# token total may still hold entries the next admission prunes)
STATE = (
    _NOW
    + """
local count = redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
local first = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf',
  'WITHSCORES', 'LIMIT', 0, 1)
local oldest = now
if #first > 0 then oldest = tonumber(first[2]) end
local total = 0
if count > 0 then total = tonumber(redis.call('GET', KEYS[2]) or '0') end
return {count, total, oldest, now}
"""
)

# KEYS: win, lease, tok. ARGV: uid, tokens counted, real tokens (-1: keep). Idempotent.
FINISH = """
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[3]) >= 0 and ARGV[3] ~= ARGV[2] then
  local old = ARGV[1] .. ':' .. ARGV[2]
  local score = redis.call('ZSCORE', KEYS[1], old)
  if score then
    redis.call('ZREM', KEYS[1], old)
    redis.call('ZADD', KEYS[1], score, ARGV[1] .. ':' .. ARGV[3])
    redis.call('INCRBY', KEYS[3], tonumber(ARGV[3]) - tonumber(ARGV[2]))
  end
end
return 1
"""

# KEYS: a sorted set of expiries. ARGV: ttl, ids... Extends the ones still there.
RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
"""
)

_PRUNE_HOLDS = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then
    local amount, period = string.match(v, '^([^|]+)|(.*)$')
    redis.call('HINCRBYFLOAT', KEYS[4], period, -tonumber(amount))
    redis.call('HDEL', KEYS[2], id)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
"""

# Run when RESERVE seeds a new period (KEYS and ARGV as RESERVE's): drops the spent and
# held fields of the same kind ("d:", "w:", "m:") older than the period just before it,
# unless a hold still names them. The one just before stays until the next period is
# seeded, a whole period later: a reservation taken before midnight settles against its
# day, and a replica whose clock is still behind finds that day's count, not an empty
# one. So a key keeps two periods of a kind (and those its holds name), whatever its
# age, and nothing here depends on the Redis clock agreeing with the replicas'.
_PRUNE_PERIODS = """
  local kind = string.match(ARGV[4], '^(%a:)')
  if kind then
    local fields = redis.call('HKEYS', KEYS[1])
    for _, f in ipairs(redis.call('HKEYS', KEYS[4])) do fields[#fields + 1] = f end
    local before = nil
    for _, f in ipairs(fields) do
      if string.sub(f, 1, 2) == kind and f < ARGV[4] and (not before or f > before) then
        before = f
      end
    end
    if before then
      local named = {}
      for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
        named[string.match(v, '^[^|]+|(.*)$')] = true
      end
      for _, f in ipairs(fields) do
        if string.sub(f, 1, 2) == kind and f < before and not named[f] then
          redis.call('HDEL', KEYS[1], f)
          redis.call('HDEL', KEYS[4], f)
        end
      end
    end
  end
"""

# KEYS: spent, holds, hexp, held. ARGV: hold id, amount, limit, period field, seed, ttl,
# epsilon. -> {1 held | 0 refused | -1 unseeded, available before this hold (a string)}
# Redis counts a period's spending from the first reservation against it; the seed is
# what the database has for it then. Sent empty at first: the client reads the database
# only when Redis answers -1 (a key or period first seen, or Redis lost its data).
_RESERVE = (
    """
local spent = redis.call('HGET', KEYS[1], ARGV[4])
if not spent then
  if ARGV[5] == '' then return {-1, '0'} end
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
  spent = ARGV[5]
"""
    + _PRUNE_PERIODS
    + """
end
local held = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0')
local available = tonumber(ARGV[3]) - tonumber(spent) - held
if tonumber(ARGV[2]) > available + tonumber(ARGV[7]) then
  return {0, tostring(available)}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[4])
redis.call('HINCRBYFLOAT', KEYS[4], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
return {1, tostring(available)}
"""
)
RESERVE = _NOW + _PRUNE_HOLDS + _RESERVE

# ADMIT then RESERVE in one script, for a key with rate limits and a credit limit: one
# round trip per admission. KEYS: ADMIT's three, then RESERVE's four; ARGV: ADMIT's seven,
# then RESERVE's seven. -> {ADMIT's reply, RESERVE's reply}. A request refused credit (or
# whose period is unseeded) leaves no trace in the window or the leases: its admission
# is undone in the same script.
OPEN = (
    _NOW
    + "local function admit(KEYS, ARGV)\n"
    + _ADMIT
    + "end\nlocal function reserve(KEYS, ARGV)\n"
    + _PRUNE_HOLDS
    + _RESERVE
    + """end
local a = admit({KEYS[1], KEYS[2], KEYS[3]},
  {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]})
if a[1] == 0 then return {a, {1, '0'}} end
local r = reserve({KEYS[4], KEYS[5], KEYS[6], KEYS[7]},
  {ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]})
if r[1] ~= 1 then
  if tonumber(ARGV[1]) >= 0 or tonumber(ARGV[2]) >= 0 then
    if redis.call('ZREM', KEYS[1], ARGV[5] .. ':' .. ARGV[4]) == 1 then
      redis.call('DECRBY', KEYS[3], tonumber(ARGV[4]))
    end
  end
  redis.call('ZREM', KEYS[2], ARGV[5])
end
return {a, r}
"""
)

# KEYS: spent, holds, hexp, held. ARGV: hold id, cost, the periods to bill ("all", ...).
# Frees the hold and adds the cost to each period Redis already counts (one it does not
# is seeded from the database when next reserved against). Only a hold still there is
# billed, so a retried settle never bills twice. Release: no periods.
SETTLE = """
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
local amount, period = string.match(v, '^([^|]+)|(.*)$')
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[4], period, -tonumber(amount))
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[2])
  end
end
return 1
"""

KEYS_CHANNEL = "sy:keys"  # a key's id, published when it changes


def window_keys(key_id: str) -> list[str]:
    return [f"sy:{{{key_id}}}:{part}" for part in ("win", "lease", "tok")]


def credit_keys(key_id: str) -> list[str]:
    return [f"sy:{{{key_id}}}:{part}" for part in ("spent", "holds", "hexp", "held")]
