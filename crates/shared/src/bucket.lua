-- switchyard-shared: one replica's push to a batch of shared allowances (token buckets).
--
-- KEYS, per allowance: its bucket (a hash: level, at), then this replica's total for it.
-- ARGV[1]: TTL of both keys, in milliseconds. Then, per allowance: its size per minute, this
-- replica's last total Redis acknowledged, and its total now.
--
-- A replica sends the running total of its adjustments, not a delta: the delta applied is the
-- total now minus the total this script last stored for that replica. So a push whose answer
-- was lost (a timeout after Redis ran it) and is sent again applies nothing twice. If that
-- stored total has expired (a replica away for longer than the TTL), the replica's last
-- acknowledged total stands in for it. A delta is clamped to one minute's allowance, so a long
-- outage pushes no more than that.
--
-- The bucket refills by this server's clock (TIME), so replicas need no synchronised clocks,
-- then takes the delta, clamped to [-size, size] as the core's Bucket does. Only a non-zero
-- delta writes (and renews the TTL): a push with nothing new is a read. A bucket that expired
-- had been untouched for longer than the TTL (at least 2 minutes), so it was full anyway.
-- Returns each level as a string (a Lua number would come back truncated to an integer).
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = ARGV[1]
local out = {}
for i = 1, #KEYS / 2 do
  local bucket, mine = KEYS[2 * i - 1], KEYS[2 * i]
  local size = tonumber(ARGV[3 * i - 1])
  local acked = tonumber(ARGV[3 * i])
  local total = tonumber(ARGV[3 * i + 1])
  local seen = tonumber(redis.call('GET', mine)) or acked
  local delta = math.max(-size, math.min(size, total - seen))
  local v = redis.call('HMGET', bucket, 'level', 'at')
  local level, at = tonumber(v[1]), tonumber(v[2])
  if level == nil or at == nil then
    level = size
  elseif now > at then
    level = level + (now - at) / 60000000 * size
  end
  level = math.min(size, level)
  if delta ~= 0 then
    level = math.max(-size, math.min(size, level + delta))
    redis.call('HSET', bucket, 'level', string.format('%.17g', level), 'at', string.format('%.0f', now))
    redis.call('PEXPIRE', bucket, ttl)
    redis.call('SET', mine, ARGV[3 * i + 1], 'PX', ttl)
  end
  out[i] = string.format('%.17g', level)
end
return out
