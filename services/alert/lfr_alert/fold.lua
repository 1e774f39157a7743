-- Fold one match into the alert of its (deployment, camera, subject) pass, atomically.
-- KEYS: 1 the window (a hash: the pass's alert_id and the capture times of its first and last match),
--       2 the alert's record, 3 the match ids folded into it, 4 its best probe crop (sealed), 5 the
--       deployment's alert ids, 6 the deployment's record (its stats), 7 the deployment's match ids and
--       the alert each went into, 8 the scene of its best probe face (a SceneImage, its image sealed)
-- ARGV: 1 the alert id the caller read from the window ("" if none), 2 the alert to fold into: that
--       one, the one a re-delivered match went into before, or a new id when the caller found the match
--       outside the window (capture time),
--       3 match_id, 4 score, 5 captured_at, 6 now, 7 retention_ms, 8 sealed crop, 9 deployment_id,
--       10 van_id, 11 camera_id, 12 subject_id, 13 category, 14 threshold, 15 model_id, 16 entry_id,
--       17 track_id, 18 runner_up_subject_id, 19 runner_up_score, 20 hold_reason ("" when the match
--       would not hold its alert for a supervisor), 21 the match's scene ("" when it carried none)
-- Returns {"retry", id} when the window changed since the caller read it; else
-- {"ok", created, changed, the sealed best crop, held (1 when this match put the alert on hold),
--  HGETALL of the record...}.
-- The window slides in capture time: a match captured within the window of the pass's first or last
-- match folds into its alert, so one pass is one alert however long the person stays in view, however
-- often the tracker split their track, and however late the matches are processed (a backlog); a
-- match captured after a longer gap raises a new alert. A match id seen before changes nothing
-- (re-delivery after a crash). The best match brings its runner-up with it, and holds the alert for a
-- supervisor when its runner-up scored within the deployment's min_margin: once held, always held.
-- Every key is refreshed to live the operational retention.
local window, record, seen, crop, index, deployment = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local match_alerts, scene = KEYS[7], KEYS[8]
local expected, target = ARGV[1], ARGV[2]
local match_id, score, captured = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now, retention_ms = ARGV[6], tonumber(ARGV[7])
local van = ARGV[10]
local current = redis.call("HGET", window, "alert_id")
if (current or "") ~= expected then
  return {"retry", current or ""}
end
local created = 0
local before = redis.call("HGET", match_alerts, match_id)
if before and before ~= target then
  return {"retry", current or ""}  -- it went into another alert before: the caller folds it there
end
if not before and target ~= current then
  created = 1
  local new_id = target
  redis.call("DEL", window)
  redis.call("HSET", window, "alert_id", new_id, "first", ARGV[5], "last", ARGV[5])
  redis.call("HSET", record, "alert_id", new_id, "deployment_id", ARGV[9], "van_id", van,
             "camera_id", ARGV[11], "subject_id", ARGV[12], "category", ARGV[13], "threshold", ARGV[14],
             "model_id", ARGV[15], "track_id", ARGV[17], "revision", 0, "match_count", 0, "score", -2, "state", "raised",
             "first_captured_at", ARGV[5], "last_seen_at", ARGV[5], "raised_at", now, "updated_at", now)
  redis.call("ZADD", index, now, new_id)
  redis.call("HINCRBY", deployment, "stats:alerts", 1)
  redis.call("HINCRBY", deployment, "stats:alerts@" .. van, 1)
end
local changed = 0
local held = 0
if redis.call("SADD", seen, match_id) == 1 then
  changed = 1
  redis.call("HSET", match_alerts, match_id, target)
  if captured > tonumber(redis.call("HGET", window, "last")) then
    redis.call("HSET", window, "last", ARGV[5])
  end
  if captured < tonumber(redis.call("HGET", window, "first")) then
    redis.call("HSET", window, "first", ARGV[5])
  end
  redis.call("HINCRBY", record, "revision", 1)
  redis.call("HINCRBY", record, "match_count", 1)
  redis.call("HSET", record, "updated_at", now)
  if score > tonumber(redis.call("HGET", record, "score")) then
    redis.call("HSET", record, "score", ARGV[4], "best_match_id", match_id, "entry_id", ARGV[16],
               "runner_up_subject_id", ARGV[18], "runner_up_score", ARGV[19])
    redis.call("SET", crop, ARGV[8])
    -- The scene goes with the crop: the best match's frame, or none (the officer is told why).
    if ARGV[21] ~= "" then
      redis.call("SET", scene, ARGV[21])
    else
      redis.call("DEL", scene)
    end
    if ARGV[20] ~= "" and redis.call("HGET", record, "held") ~= "1" then
      held = 1
      redis.call("HSET", record, "held", "1", "hold_reason", ARGV[20])
      redis.call("HINCRBY", deployment, "stats:held", 1)
      redis.call("HINCRBY", deployment, "stats:held@" .. van, 1)
    end
  end
  if captured > tonumber(redis.call("HGET", record, "last_seen_at")) then
    redis.call("HSET", record, "last_seen_at", ARGV[5])
  end
  if captured < tonumber(redis.call("HGET", record, "first_captured_at")) then
    redis.call("HSET", record, "first_captured_at", ARGV[5])
  end
end
for _, key in ipairs({window, record, seen, crop, index, match_alerts, scene}) do
  redis.call("PEXPIRE", key, retention_ms)
end
local out = {"ok", created, changed, redis.call("GET", crop) or "", held}
for _, v in ipairs(redis.call("HGETALL", record)) do
  out[#out + 1] = v
end
return out
