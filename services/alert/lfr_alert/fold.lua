-- Fold one match into the alert of its (deployment, camera, subject) pass, atomically.
-- KEYS: 1 the window (the alert id, for window_ms after the latest match), 2 the alert's record,
--       3 the match ids folded into it, 4 its best probe crop (sealed), 5 the deployment's alert ids,
--       6 the deployment's record (its stats)
-- ARGV: 1 the alert id the caller read from the window ("" if none), 2 a new alert id,
--       3 match_id, 4 score, 5 captured_at, 6 now, 7 window_ms, 8 retention_ms, 9 sealed crop,
--       10 deployment_id, 11 van_id, 12 camera_id, 13 subject_id, 14 category, 15 threshold,
--       16 model_id, 17 entry_id, 18 track_id
-- Returns {"retry", id} when the window changed since the caller read it; else
-- {"ok", created, changed, the sealed best crop, HGETALL of the record...}.
-- The window slides: each new match extends it, so one pass is one alert however long the person
-- stays in view and however often the tracker split their track; a match after a longer gap raises
-- a new alert. A match id seen before changes nothing (re-delivery after a crash). Every other key
-- is refreshed to live the operational retention after the last change.
local window, record, seen, crop, index, deployment = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local expected, new_id = ARGV[1], ARGV[2]
local match_id, score, captured = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now, window_ms, retention_ms = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local van = ARGV[11]
local current = redis.call("GET", window)
if (current or "") ~= expected then
  return {"retry", current or ""}
end
local created = 0
if not current then
  created = 1
  redis.call("SET", window, new_id, "PX", window_ms)
  redis.call("HSET", record, "alert_id", new_id, "deployment_id", ARGV[10], "van_id", van,
             "camera_id", ARGV[12], "subject_id", ARGV[13], "category", ARGV[14], "threshold", ARGV[15],
             "model_id", ARGV[16], "track_id", ARGV[18], "revision", 0, "match_count", 0, "score", -2, "state", "raised",
             "first_captured_at", ARGV[5], "last_seen_at", ARGV[5], "raised_at", now, "updated_at", now)
  redis.call("ZADD", index, now, new_id)
  redis.call("HINCRBY", deployment, "stats:alerts", 1)
  redis.call("HINCRBY", deployment, "stats:alerts@" .. van, 1)
end
local changed = 0
if redis.call("SADD", seen, match_id) == 1 then
  changed = 1
  redis.call("PEXPIRE", window, window_ms)
  redis.call("HINCRBY", record, "revision", 1)
  redis.call("HINCRBY", record, "match_count", 1)
  redis.call("HSET", record, "updated_at", now)
  if score > tonumber(redis.call("HGET", record, "score")) then
    redis.call("HSET", record, "score", ARGV[4], "best_match_id", match_id, "entry_id", ARGV[17])
    redis.call("SET", crop, ARGV[9])
  end
  if captured > tonumber(redis.call("HGET", record, "last_seen_at")) then
    redis.call("HSET", record, "last_seen_at", ARGV[5])
  end
  if captured < tonumber(redis.call("HGET", record, "first_captured_at")) then
    redis.call("HSET", record, "first_captured_at", ARGV[5])
  end
end
for _, key in ipairs({record, seen, crop, index}) do
  redis.call("PEXPIRE", key, retention_ms)
end
local out = {"ok", created, changed, redis.call("GET", crop) or ""}
for _, v in ipairs(redis.call("HGETALL", record)) do
  out[#out + 1] = v
end
return out
