/*
 * kvrouter: the Lua scripts that make every multi-key change atomic. The key
 * and argument layout of each is its contract with kvr_redis_pub.c and
 * kvr_redis_sync.c; README.md ("Redis schema") describes the keys.
 *
 * Rules kept by every script:
 *  - event ids and generations travel as decimal strings and are compared
 *    as strings (Lua numbers are doubles); only evseq, an INCR counter, is
 *    a Lua number (exact below 2^53);
 *  - everything is validated before the first write, so a rejected call
 *    changes nothing;
 *  - a reply array never contains nil (Lua would cut it there).
 *
 * Keys outside KEYS are touched (per-worker keys found through the
 * registry), so these scripts assume a standalone Redis, not a cluster.
 */
#include "kvr_redis_int.h"

/*
 * Publisher, one script for all modes so one EVAL (at register) caches it
 * for the EVALSHA calls that follow.
 *
 * KEYS: 1 w:<id>  2 blocks:<id>  3 alive:<id>  4 workers  5 evseq
 *       6 events  7 epoch
 * ARGV: 1 mode (reg|add|rem|clr|hb|unreg)  2 worker id  3 generation
 *       4 event id (reg: last id the set includes)  5 previous event id
 *       6 event (kvr_event codec)  7 packed 8-byte LE seq hashes
 *       8 stream maxlen (0: none)  9 retain ms (0: none)  10 alive ttl ms
 *       11 alive value  12 role  13 addr  14 block size  15 capacity
 *       16 key prefix
 * Reply: the stream seq of the entry written; 0 for hb. Errors: KVRNOREG
 * (registration missing or another generation), KVRGAP (cursor is not the
 * previous event id), KVRMODE.
 */
const char kvr_redis_lua_pub[] =
    "local wk, bk, ak = KEYS[1], KEYS[2], KEYS[3]\n"
    "local workers, evseq, events, epoch = KEYS[4], KEYS[5], KEYS[6], KEYS[7]\n"
    "local mode, id, gen = ARGV[1], ARGV[2], ARGV[3]\n"
    "local modes = {reg=1, add=1, rem=1, clr=1, hb=1, unreg=1}\n"
    "if not modes[mode] then return redis.error_reply('KVRMODE bad mode') end\n"
    "local function retain()\n"
    "  if ARGV[9] ~= '0' then\n"
    "    redis.call('PEXPIRE', wk, ARGV[9])\n"
    "    redis.call('PEXPIRE', bk, ARGV[9])\n"
    "  end\n"
    "end\n"
    "local function emit()\n"
    "  local seq = redis.call('INCR', evseq)\n"
    "  local sid = string.format('%d-0', seq)\n"
    "  if ARGV[8] ~= '0' then\n"
    "    redis.call('XADD', events, 'MAXLEN', '~', ARGV[8], sid, 'e', ARGV[6])\n"
    "  else\n"
    "    redis.call('XADD', events, sid, 'e', ARGV[6])\n"
    "  end\n"
    "  return seq\n"
    "end\n"
    "local function setop(cmd)\n"
    "  local p = ARGV[7]\n"
    "  local n = math.floor(#p / 8)\n"
    "  local i = 0\n"
    "  while i < n do\n"
    "    local j = math.min(i + 256, n)\n"
    "    local t = {}\n"
    "    for k = i, j - 1 do t[#t + 1] = string.sub(p, k * 8 + 1, k * 8 + 8) end\n"
    "    redis.call(cmd, bk, unpack(t))\n"
    "    i = j\n"
    "  end\n"
    "end\n"
    "if mode == 'reg' then\n"
    "  if redis.call('EXISTS', epoch) == 0 then\n"
    "    local t = redis.call('TIME')\n"
    "    redis.call('SET', epoch, t[1] .. '.' .. t[2])\n"
    "  end\n"
    /* keep XADD ids above the stream's top even if evseq was lost alone */
    "  local top = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)\n"
    "  if #top > 0 then\n"
    "    local last = tonumber(string.match(top[1][1], '^(%d+)-'))\n"
    "    local cur = tonumber(redis.call('GET', evseq) or '0')\n"
    "    if cur == nil or cur < last then\n"
    "      redis.call('SET', evseq, string.format('%d', last))\n"
    "    end\n"
    "  end\n"
    /* registrations whose retain TTL ran out leave the registry here */
    "  for _, m in ipairs(redis.call('SMEMBERS', workers)) do\n"
    "    if m ~= id and redis.call('EXISTS', ARGV[16] .. 'w:' .. m) == 0 then\n"
    "      redis.call('SREM', workers, m)\n"
    "      redis.call('DEL', ARGV[16] .. 'blocks:' .. m)\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', wk, bk)\n"
    "  redis.call('HSET', wk, 'role', ARGV[12], 'addr', ARGV[13],\n"
    "    'block_size', ARGV[14], 'capacity', ARGV[15],\n"
    "    'generation', gen, 'last_event_id', ARGV[4])\n"
    "  setop('SADD')\n"
    "  redis.call('SADD', workers, id)\n"
    "  redis.call('SET', ak, ARGV[11], 'PX', ARGV[10])\n"
    "  retain()\n"
    "  return emit()\n"
    "end\n"
    "local cur = redis.call('HMGET', wk, 'generation', 'last_event_id')\n"
    "if cur[1] ~= gen then\n"
    "  return redis.error_reply('KVRNOREG worker not registered')\n"
    "end\n"
    "if mode == 'hb' then\n"
    "  redis.call('SET', ak, ARGV[11], 'PX', ARGV[10])\n"
    "  retain()\n"
    "  return 0\n"
    "end\n"
    /* unreg skips the cursor check: it must work after a failed event */
    "if mode == 'unreg' then\n"
    "  local seq = emit()\n"
    "  redis.call('DEL', wk, bk, ak)\n"
    "  redis.call('SREM', workers, id)\n"
    "  return seq\n"
    "end\n"
    "if cur[2] ~= ARGV[5] then\n"
    "  return redis.error_reply('KVRGAP event id does not follow the cursor')\n"
    "end\n"
    "local seq = emit()\n"
    "if mode == 'add' then setop('SADD')\n"
    "elseif mode == 'rem' then setop('SREM')\n"
    "else redis.call('DEL', bk) end\n"
    "redis.call('HSET', wk, 'last_event_id', ARGV[4])\n"
    "retain()\n"
    "return seq\n";

/*
 * Reader: the registry and liveness in one round trip.
 * KEYS: 1 workers  2 evseq  3 epoch.  ARGV: 1 key prefix.
 * Reply: { epoch or "", evseq or "0", id1, alive1, id2, alive2, ... } for
 * the workers whose alive key exists.
 */
const char kvr_redis_lua_registry[] =
    "local out = { redis.call('GET', KEYS[3]) or '',\n"
    "              redis.call('GET', KEYS[2]) or '0' }\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local a = redis.call('GET', ARGV[1] .. 'alive:' .. id)\n"
    "  if a then\n"
    "    out[#out + 1] = id\n"
    "    out[#out + 1] = a\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * Reader: one worker's state, read atomically with the stream position it
 * corresponds to (every entry up to evseq is reflected in it).
 * KEYS: 1 w:<id>  2 blocks:<id>  3 alive:<id>  4 evseq.
 * Reply: { evseq } when the worker is not registered or not alive, else
 * { evseq, generation, last_event_id, role, addr, block_size, capacity,
 *   alive, { member, ... } }.
 */
const char kvr_redis_lua_snapshot[] =
    "local seq = redis.call('GET', KEYS[4]) or '0'\n"
    "local w = redis.call('HMGET', KEYS[1], 'generation', 'last_event_id',\n"
    "  'role', 'addr', 'block_size', 'capacity')\n"
    "local a = redis.call('GET', KEYS[3])\n"
    "if not w[1] or not a then return { seq } end\n"
    "return { seq, w[1], w[2] or '', w[3] or '', w[4] or '', w[5] or '',\n"
    "  w[6] or '', a, redis.call('SMEMBERS', KEYS[2]) }\n";
