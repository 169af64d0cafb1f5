-- switchyard-shared: one replica's round over a batch of deployments: its signals pushed and
-- everyone's read back, its attempts in flight published and the others' summed.
--
-- KEYS, per deployment: its signals (a hash: eat, euntil, rat, cuntil: the latest ejection's
-- start and end, the latest recovery, the latest cool-down's end, in Unix ms), then its
-- attempts in flight (a hash: a field per replica, "count:expires", expires in this server's
-- Unix ms).
-- ARGV[1]: the lease of this replica's counts (ms); ARGV[2]: this replica's field; ARGV[3]: how
-- long (ms) a signals hash outlives the latest instant it holds. Then, per deployment, five
-- numbers: this replica's signals Redis has not confirmed (ejected at, ejected until,
-- recovered at, cooling until; 0 for none) and its attempts in flight there (-1: not counted).
--
-- Signals merge as the core's `Heard::record` does, in its order (recovery, ejection, cool-down):
-- a recovery moves `rat` on; an ejection made after `rat` replaces a smaller (start, end); a
-- cool-down keeps the later end. Merging is idempotent, so a push sent again after a lost answer
-- changes nothing. Only a change writes, and renews the key's expiry.
--
-- A count of zero removes the replica's field; another is written with its lease, and the key
-- lives one lease after the last count written, so a replica that stopped syncing stops counting
-- within a lease. Other replicas' fields whose lease ran out are removed when read.
-- Returns, per deployment, "eat euntil rat cuntil others" (integers, as text).
if redis.replicate_commands then
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local me = ARGV[2]
local keep = tonumber(ARGV[3])
local function int(v)
  return tonumber(v) or 0
end
local function text(n)
  return string.format('%.0f', n)
end
local out = {}
for i = 1, #KEYS / 2 do
  local signals, flight = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 3 + 5 * (i - 1)
  local at, ending, recovered, cooling = int(ARGV[a + 1]), int(ARGV[a + 2]), int(ARGV[a + 3]), int(ARGV[a + 4])
  local count = int(ARGV[a + 5])
  local v = redis.call('HMGET', signals, 'eat', 'euntil', 'rat', 'cuntil')
  local eat, eu, rat, cu = int(v[1]), int(v[2]), int(v[3]), int(v[4])
  local changed = false
  if recovered > rat then
    rat = recovered
    changed = true
  end
  if at > rat and (at > eat or (at == eat and ending > eu)) then
    eat, eu = at, ending
    changed = true
  end
  if cooling > cu then
    cu = cooling
    changed = true
  end
  if changed then
    redis.call('HSET', signals, 'eat', text(eat), 'euntil', text(eu), 'rat', text(rat), 'cuntil', text(cu))
    redis.call('PEXPIREAT', signals, text(math.max(now, eu, cu, rat) + keep))
  end
  local others = 0
  if count >= 0 then
    if count > 0 then
      redis.call('HSET', flight, me, text(count) .. ':' .. text(now + lease))
      redis.call('PEXPIRE', flight, lease)
    else
      redis.call('HDEL', flight, me)
    end
    local all = redis.call('HGETALL', flight)
    for j = 1, #all, 2 do
      if all[j] ~= me then
        local c, expires = string.match(all[j + 1], '^(%d+):(%d+)$')
        if c and tonumber(expires) > now then
          others = others + tonumber(c)
        else
          redis.call('HDEL', flight, all[j])
        end
      end
    end
  end
  out[i] = text(eat) .. ' ' .. text(eu) .. ' ' .. text(rat) .. ' ' .. text(cu) .. ' ' .. text(others)
end
return out
