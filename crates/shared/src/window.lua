-- switchyard-shared: one replica's push to a batch of shared budget windows.
--
-- KEYS, per window: its hash, `{prefix}:budget:{name}:{window}`, holding `used` (dollars used
-- in the window by every replica), `lift` (see floors) and one `replica:{id}` field per
-- replica (that replica's running total there).
-- ARGV[1]: this replica's field name. Then, per window: the TTL in milliseconds, this
-- replica's total in the window now, and a floor ('' for none).
--
-- A replica sends the running total of its use in the window, not a delta: the delta applied
-- is the total now minus the total this script last stored in the replica's field, in the same
-- write as `used`. So a push whose answer was lost (a timeout after Redis ran it) and is sent
-- again applies nothing twice; and a field that is missing means that none of this replica's
-- use is in `used` (the hash is new, or the server restarted empty), so its whole total counts.
--
-- A floor is spend counted before a replica started (the ledger's): the window's use becomes
-- at least the floor plus whatever is pushed after it. It is kept as `lift`, the most any floor
-- exceeded `used` by when it came, and the use answered is `used + max(lift, 0)`; so replicas
-- that each bring the same floor count it once.
--
-- Only a change writes (and renews the TTL, a little longer than the window): a push with
-- nothing new is a read. Returns each window's use as a string (a Lua number would come back
-- truncated to an integer).
local mine = ARGV[1]
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local ttl = ARGV[3 * i - 1]
  local total = tonumber(ARGV[3 * i])
  local floor = tonumber(ARGV[3 * i + 1])
  local v = redis.call('HMGET', key, 'used', 'lift', mine)
  local used = tonumber(v[1]) or 0
  local lift = tonumber(v[2])
  local seen = tonumber(v[3]) or 0
  local wrote = false
  if total ~= seen then
    used = used + (total - seen)
    redis.call('HSET', key, 'used', string.format('%.17g', used), mine, ARGV[3 * i])
    wrote = true
  end
  if floor ~= nil and (lift == nil or floor - used > lift) then
    lift = floor - used
    redis.call('HSET', key, 'lift', string.format('%.17g', lift))
    wrote = true
  end
  if wrote then
    redis.call('PEXPIRE', key, ttl)
  end
  out[i] = string.format('%.17g', used + math.max(lift or 0, 0))
end
return out
