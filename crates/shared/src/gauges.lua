-- switchyard-shared: one replica's round over a batch of gauges (a tenant's or a managed key's
-- requests in progress): its counts published, the other replicas' summed, and the replicas
-- alive counted.
--
-- KEYS[1]: the replicas alive (a hash: a field per replica, its lease's end in this server's
-- Unix ms). Then, per gauge, its requests in progress (a hash: a field per replica,
-- "count:expires", as a deployment's attempts in flight in signals.lua).
-- ARGV[1]: the lease (ms); ARGV[2]: this replica's field. Then, per gauge, this replica's count.
--
-- This replica's presence is renewed with its lease; fields of replicas whose lease ran out are
-- removed when read. A count of zero removes the replica's field; another is written with its
-- lease, and the key lives one lease after the last count written, so a replica that stopped
-- syncing stops counting within a lease.
-- Returns the replicas alive, then per gauge the others' count (integers, as text).
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local me = ARGV[2]
local function text(n)
  return string.format('%.0f', n)
end
-- The other replicas' live fields of `key`: their counts summed, and how many; expired ones
-- are removed.
local function others(key)
  local sum, n = 0, 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if all[j] ~= me then
      local c, expires = string.match(all[j + 1], '^(%d+):(%d+)$')
      if c and tonumber(expires) > now then
        sum, n = sum + tonumber(c), n + 1
      else
        redis.call('HDEL', key, all[j])
      end
    end
  end
  return sum, n
end
redis.call('HSET', KEYS[1], me, '0:' .. text(now + lease))
redis.call('PEXPIRE', KEYS[1], lease)
local _, alive = others(KEYS[1])
local out = { text(alive + 1) }
for i = 2, #KEYS do
  local key = KEYS[i]
  local count = tonumber(ARGV[i + 1]) or 0
  if count > 0 then
    redis.call('HSET', key, me, text(count) .. ':' .. text(now + lease))
    redis.call('PEXPIRE', key, lease)
  else
    redis.call('HDEL', key, me)
  end
  local sum = others(key)
  out[i] = text(sum)
end
return out
