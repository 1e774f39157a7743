"""Every metric the services export, defined once so names and labels cannot drift.

Names follow Prometheus conventions: `lfr_<what>_<unit>`, counters end in `_total`, durations are
seconds. The service is not a label: it comes from the scrape job. Per-camera series carry the
deployment, van and camera ids so that rates can be computed per van (see docs/metrics.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CAMERA = ("deployment_id", "van_id", "camera_id")

# Latency buckets from 1 ms to 60 s: stages take 5-200 ms per record on a CPU, and an alert is due
# within a second of capture, so the range around one second is finer.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- Kafka stages (shared runner) -------------------------------------------------------------
MESSAGES_CONSUMED = Counter("lfr_messages_consumed_total", "Records read from an input topic", ["topic"])
MESSAGES_PRODUCED = Counter(
    "lfr_messages_produced_total", "Records the broker acknowledged on an output topic", ["topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "lfr_messages_dead_lettered_total", "Records sent to the stage's dead-letter topic", ["topic", "reason"]
)
MESSAGES_SKIPPED = Counter(
    "lfr_messages_skipped_total",
    "Records deliberately not processed (e.g. their deployment was closed)",
    ["topic", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "lfr_message_processing_seconds", "Handling time per input record", ["topic"], buckets=_SECONDS
)
BATCH_RETRIES = Counter(
    "lfr_batch_retries_total", "Batches retried after a transient failure (broker or Redis)", ["topic"]
)
RECORDS_ABANDONED = Counter(
    "lfr_records_abandoned_total",
    "Records neither published for nor dead-lettered after every try, skipped so that the stage goes on "
    "(each logged with its topic, partition and offset)",
    ["topic"],
)
LAST_PROGRESS = Gauge(
    "lfr_stage_last_progress_timestamp_seconds", "When the stage last committed a batch of its input", ["topic"]
)
CONSUMER_LAG = Gauge(
    "lfr_consumer_lag_records",
    "Records of an input partition not yet processed by this consumer (high-water mark - position)",
    ["topic", "partition"],
)

# --- ingest ------------------------------------------------------------------------------------
FRAMES_CAPTURED_TOTAL = Counter("lfr_frames_captured_total", "Frames sampled from a camera and queued", CAMERA)
FRAMES_PUBLISHED = Counter("lfr_frames_published_total", "Frames the broker acknowledged", CAMERA)
FRAMES_DROPPED = Counter(
    "lfr_frames_dropped_total",
    "Frames not processed, by reason (queue_full, stale, deployment_closed)",
    [*CAMERA, "reason"],
)
CAMERA_UP = Gauge("lfr_camera_up", "1 while the camera's source is delivering frames", CAMERA)
CAMERA_FINISHED = Gauge(
    "lfr_camera_finished",
    "1 once a camera's source ended (a file without loop) or its deployment closed",
    CAMERA,
)
CAMERA_RECONNECTS = Counter("lfr_camera_reconnects_total", "Times a failed source was reopened", CAMERA)

# --- detect / embed ----------------------------------------------------------------------------
FRAMES_PROCESSED = Counter("lfr_frames_processed_total", "Frames that went through face detection", CAMERA)
FACES_DETECTED_TOTAL = Counter("lfr_faces_detected_total", "Faces the detector found", CAMERA)
FACES_REJECTED = Counter(
    "lfr_faces_rejected_total", "Faces found but too small or too blurred to identify", [*CAMERA, "reason"]
)
FACES_EMBEDDED_TOTAL = Counter("lfr_faces_embedded_total", "Faces turned into vectors", [*CAMERA, "model"])
TRACKS_STARTED = Counter("lfr_tracks_started_total", "Tracks started: a face seen for the first time", CAMERA)
TRACK_SHOTS = Histogram(
    "lfr_track_shots",
    "Faces of a track sent to be embedded, observed when the track ends (one per shot interval of the pass)",
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30),
)
FACES_NOT_EMBEDDED = Counter(
    "lfr_faces_not_embedded_total",
    "Faces good enough to identify but not embedded (not_due, not_better, budget_spent); their track is still decided",
    [*CAMERA, "reason"],
)
AUDIT_REFUSALS_DROPPED = Counter(
    "lfr_audit_refusals_dropped_total",
    "Refusals of callers without a valid token answered but not audited: over "
    "UNAUTHENTICATED_AUDITS_PER_MINUTE from one address (the audit trail is kept forever)",
)
AUDIT_CHAIN_EPOCHS = Counter(
    "lfr_audit_chain_epochs_total",
    "Audit chain epochs begun: a partition's first entry, or Redis lost the chain's head (docs/audit.md)",
)
AUDIT_CHAIN_ANOMALIES = Counter(
    "lfr_audit_chain_anomalies_total",
    "What an audit writer found that breaks or may break the chain: repeat (the broker kept an entry twice; noted "
    "on the trail), foreign (records written around the chain), lock_lost, unreadable (an outbox record that is "
    "no audit event)",
    ["kind"],
)
AUDIT_ROOTS_SIGNED = Counter("lfr_audit_roots_signed_total", "Daily roots of the audit chains signed")
ALERT_REVISIONS_REFUSED = Counter(
    "lfr_alert_revisions_refused_total",
    "Alert revisions read from the topic and not shown: forged (not signed by the deployment's alert key) or "
    "out_of_order (not newer than the one shown)",
    ["reason"],
)
JANITOR_SWEEPS = Counter(
    "lfr_janitor_sweeps_total", "Sweeps of the deployments service's janitor that completed (expiry, deletions, audit)"
)
PASSES_FLAGGED = Counter(
    "lfr_passes_flagged_total",
    "Ended tracks (passes) whose decision rested on less than usual: single_face, never_frontal",
    ["reason"],
)
SCENE_IMAGES = Counter(
    "lfr_scene_images_total",
    "Scenes of embedded shots (docs/decisions/0020): composed, or why not (face_not_found: another face covers "
    "it; no_room: the frame's record was full; disabled)",
    ["status"],
)
FRAMES_OUT_OF_ORDER = Counter(
    "lfr_frames_out_of_order_total",
    "Frames older than one already seen of their camera: their faces are decided on their own",
    CAMERA,
)
INFERENCE_SECONDS = Histogram(
    "lfr_inference_seconds",
    "Model run time per call (one frame or one batch of faces)",
    ["model"],
    buckets=_SECONDS,
)
MODEL_INFO = Gauge(
    "lfr_model_info",
    "The model a service runs and the onnxruntime provider actually used",
    ["role", "model", "provider"],
)

# --- match -------------------------------------------------------------------------------------
FACES_SCANNED = Counter("lfr_faces_scanned_total", "Faces compared with the watchlist", CAMERA)
MATCHES = Counter("lfr_matches_total", "Faces at or above the deployment's threshold", CAMERA)
WATCHLIST_SEARCH_SECONDS = Histogram(
    "lfr_watchlist_search_seconds", "Top-k search time per probe face", buckets=_SECONDS
)
CAPTURE_TO_MATCH_SECONDS = Histogram(
    "lfr_capture_to_match_seconds", "From frame capture to match decision", buckets=_SECONDS
)
WATCHLIST_ENTRIES = Gauge("lfr_watchlist_entries", "Enrolled watchlist entries", ["deployment_id"])
DEPLOYMENTS = Gauge("lfr_deployments", "Deployments known, by state", ["state"])
STATE_LOST = Counter(
    "lfr_state_lost_total",
    "Times match found LFR's state gone from Redis (its epoch marker changed or vanished): deployments, "
    "keys or tombstones may have been lost",
)
DEPLOYMENTS_LOST = Counter(
    "lfr_deployments_lost_total",
    "Watchlists found without their deployment's record (lost from Redis): audited, then deleted",
)
ENROLMENTS = Counter("lfr_enrolment_images_total", "Watchlist images by outcome", ["status", "reason"])
DEPLOYMENT_RECORDS_MIGRATED = Counter(
    "lfr_deployment_records_migrated_total",
    "Deployment records written before the record's version, read with the defaults of their absent fields "
    "(once per record and process: lfr_platform.deployment_record)",
    ["from_version"],
)
DEPLOYMENT_RECORD_FIELDS_IGNORED = Counter(
    "lfr_deployment_record_fields_ignored_total",
    "Fields of a deployment record this release does not know, left unread (once per record, field and process)",
    ["field"],
)

# --- alert -------------------------------------------------------------------------------------
ALERTS = Counter("lfr_alerts_total", "Alerts raised (first match of a subject on a camera in a window)", CAMERA)
ALERT_REVISIONS = Counter("lfr_alert_revisions_total", "Alert revisions published (every folded match)", CAMERA)
ALERTS_HELD = Counter(
    "lfr_alerts_held_total",
    "Alerts held for a supervisor: the runner-up (another subject) of the best match scored within the "
    "deployment's min_margin of it",
    CAMERA,
)
CAPTURE_TO_ALERT_SECONDS = Histogram(
    "lfr_capture_to_alert_seconds", "From frame capture to the alert's first publication", buckets=_SECONDS
)

# --- adjudication (alert's AlertService) -------------------------------------------------------
# An officer decides within seconds to minutes; an alert left for an hour is a problem.
_DECISION_SECONDS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
ALERTS_ADJUDICATED_TOTAL = Counter(
    "lfr_alerts_adjudicated_total",
    "Alerts adjudicated, by outcome (true, false, undetermined); a supervisor's correction counts the new "
    "outcome here and the old one in lfr_alert_adjudications_withdrawn_total",
    [*CAMERA, "outcome"],
)
ADJUDICATIONS_WITHDRAWN = Counter(
    "lfr_alert_adjudications_withdrawn_total",
    "Adjudication outcomes replaced by a supervisor's correction, by the outcome withdrawn",
    [*CAMERA, "outcome"],
)
ALERT_ENGAGEMENTS = Counter(
    "lfr_alert_engagements_total", "Engagement decisions, by whether the person was engaged", [*CAMERA, "engaged"]
)
ALERT_FINAL_OUTCOMES = Counter(
    "lfr_alert_final_outcomes_total",
    "Final outcomes after an engagement (arrest, no_further_action, safeguarding, other)",
    [*CAMERA, "outcome"],
)
ALERT_DECISION_SECONDS = Histogram(
    "lfr_alert_decision_seconds",
    "From an alert being raised to its first adjudication",
    CAMERA,
    buckets=_DECISION_SECONDS,
)
ALERT_DECISIONS_REFUSED = Counter(
    "lfr_alert_decisions_refused_total",
    "Decisions refused (invalid, conflicting, not permitted, unknown alert), by reason",
    ["reason"],
)
ALERTS_UNADJUDICATED = Gauge(
    "lfr_alerts_unadjudicated", "Alerts of an open deployment not adjudicated yet", ["deployment_id", "van_id"]
)
ALERT_OLDEST_UNADJUDICATED_SECONDS = Gauge(
    "lfr_alert_oldest_unadjudicated_seconds",
    "Age of the oldest alert of an open deployment not adjudicated yet (0 when none)",
    ["deployment_id", "van_id"],
)
FALSE_ALERT_LIMIT = Gauge(
    "lfr_false_alerts_per_face_scanned_limit",
    "An open deployment's false-alert budget per face scanned (the policy's false_alert_budget, copied into "
    "its record at creation; its threshold is derived from it)",
    ["deployment_id"],
)

# --- the equity monitor (alert; lfr_platform.equity) -------------------------------------------
# Per deployment, not per camera: officers' perceptions are counted in as few, large cells as serve.
GROUP = ("deployment_id", "dimension", "group")
FALSE_ALERTS_BY_GROUP = Counter(
    "lfr_false_alerts_by_group_total",
    "False alerts by the adjudicating officer's perceived group of the person (dimension: sex, ethnicity); a "
    "correction counts the new group or outcome here and the old one in lfr_false_alerts_by_group_withdrawn_total",
    GROUP,
)
FALSE_ALERTS_BY_GROUP_WITHDRAWN = Counter(
    "lfr_false_alerts_by_group_withdrawn_total",
    "False alerts of a perceived group taken back by a supervisor's correction (of the outcome or the group)",
    GROUP,
)
# window="fleet": every deployment's false alerts captured within the policy's window_days (deployment_id
# empty); window="deployment": one open deployment's so far. Every alert replica computes the same values
# from Redis.
WINDOW = ("window", "deployment_id")
EQUITY_FALSE_ALERTS = Gauge(
    "lfr_equity_false_alerts", "False alerts of a perceived group in the window", [*WINDOW, "dimension", "group"]
)
EQUITY_FALSE_ALERTS_TESTED = Gauge(
    "lfr_equity_false_alerts_tested",
    "False alerts in the window whose perceived group has a reference share: the binomial test's n",
    [*WINDOW, "dimension"],
)
EQUITY_REFERENCE_SHARE = Gauge(
    "lfr_equity_reference_share", "A perceived group's reference share (the policy's)", [*WINDOW, "dimension", "group"]
)
EQUITY_P_VALUE = Gauge(
    "lfr_equity_p_value",
    "Exact one-sided binomial test of a group's false alerts against its reference share: P(this many or more)",
    [*WINDOW, "dimension", "group"],
)
EQUITY_P_VALUE_LIMIT = Gauge(
    "lfr_equity_p_value_limit", "The policy's p-value below which a group's false alerts are a disparity", WINDOW
)
EQUITY_MIN_FALSE_ALERTS = Gauge(
    "lfr_equity_min_false_alerts", "The policy's least false alerts tested before a disparity is concluded", WINDOW
)


def camera_labels(camera) -> dict[str, str]:
    """Label values of a `CameraRef` message."""
    return {"deployment_id": camera.deployment_id, "van_id": camera.van_id, "camera_id": camera.camera_id}


# --- console -----------------------------------------------------------------------------------
WEB_REQUESTS = Counter("lfr_web_requests_total", "Requests to the console, by route and status", ["route", "status"])
SIGN_INS = Counter(
    "lfr_sign_ins_total", "Sign-ins to the console, by outcome (signed_in, refused, throttled)", ["outcome"]
)
EVENT_STREAMS = Gauge("lfr_event_streams", "Live alert streams open to browsers")


class CameraSeries:
    """Starts per-camera counters at 0 for the cameras a deployment covers, and removes them when it
    closes (or per-deployment ones, keyed by other label values the same way). A counter that appears
    at 1 hides its first event from increase() and rate(): the first alert of a camera, or its first
    false alert, would never be counted by the rules."""

    def __init__(self, *families: tuple[Counter, tuple[tuple[str, ...], ...]]) -> None:
        # Each family: a counter, and the values of its labels beyond the camera's (one tuple each).
        self.families = families
        self._started: set[tuple[str, str, str]] = set()

    def keep(self, cameras: set[tuple[str, str, str]]) -> None:
        """Exactly these (deployment, van, camera) have series from now on."""
        for camera in cameras - self._started:
            for counter, extras in self.families:
                for extra in extras:
                    counter.labels(*camera, *extra)
        for camera in self._started - cameras:
            for counter, extras in self.families:
                for extra in extras:
                    try:
                        counter.remove(*camera, *extra)
                    except KeyError:
                        pass
        self._started = set(cameras)
