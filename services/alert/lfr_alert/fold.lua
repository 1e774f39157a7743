-- Fold one match into the alert of its (deployment, camera, subject), atomically.
-- KEYS[1]: the alert's hash; KEYS[2]: the set of match ids already folded into it.
-- ARGV: match_id, score, captured_at, now, window_ms, new_alert_id, probe_crop
-- The window is fixed: it starts at the alert's first match and is not extended by later ones.
-- A match id seen before changes nothing (re-delivery after a crash), and the current state is
-- returned so the same revision can be published again.
local alert, seen = KEYS[1], KEYS[2]
local match_id, score, captured = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, window_ms, new_id, crop = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
if redis.call("EXISTS", alert) == 0 then
  redis.call("HSET", alert, "alert_id", new_id, "revision", 0, "count", 0, "best_score", -2,
             "first_captured_at", captured, "last_seen_at", captured, "raised_at", now)
  redis.call("PEXPIRE", alert, window_ms)
end
if redis.call("SADD", seen, match_id) == 1 then
  redis.call("PEXPIRE", seen, math.max(redis.call("PTTL", alert), 1))
  redis.call("HINCRBY", alert, "revision", 1)
  redis.call("HINCRBY", alert, "count", 1)
  redis.call("HSET", alert, "updated_at", now)
  if score > tonumber(redis.call("HGET", alert, "best_score")) then
    redis.call("HSET", alert, "best_score", ARGV[2], "best_match_id", match_id, "best_crop", crop)
  end
  if captured > tonumber(redis.call("HGET", alert, "last_seen_at")) then
    redis.call("HSET", alert, "last_seen_at", ARGV[3])
  end
  if captured < tonumber(redis.call("HGET", alert, "first_captured_at")) then
    redis.call("HSET", alert, "first_captured_at", ARGV[3])
  end
end
return redis.call("HGETALL", alert)
