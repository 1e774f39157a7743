"""Why something was not processed: one vocabulary for every service.

These names are the `reason` of dead letters and the `reason` label of lfr_messages_dead_lettered_total,
lfr_messages_skipped_total, lfr_frames_dropped_total, lfr_faces_rejected_total,
lfr_faces_not_embedded_total, lfr_passes_flagged_total and lfr_alert_revisions_refused_total;
enrolment refusals use the same words for the same things (`face_too_small` is a face too small, in
a camera frame or in a custody photo). docs/metrics.md lists them; tests/contract/test_reasons.py
checks that the code uses no other.
"""

from __future__ import annotations

# A record that is bad input: sent to the stage's dead-letter topic with this reason and a detail.
DEAD_LETTER: dict[str, str] = {
    "malformed_message": "not the topic's message (protobuf that does not parse)",
    "unknown_deployment": "its deployment id was never a deployment",
    "deployment_state_lost": "its deployment's state was lost (Redis lost its data): nothing of it is processed",
    "camera_not_in_deployment": "its camera is not one its deployment covers",
    "no_capture_time": "its capture time is unset: its deployment's authorised window cannot be checked",
    "unsealable": "its biometric payload does not open with its deployment's key (tampered, or another's)",
    "not_an_image_frame": "its frame is not an image file",
    "undecodable_frame": "its frame does not decode",
    "too_large_frame": "its frame declares more pixels than allowed (a decompression bomb)",
    "undecodable_crop": "its face crop is not a decodable image",
    "invalid_face": "its face cannot be aligned (landmarks or crop out of range)",
    "invalid_vector": "its vector has the wrong size or is not finite",
    "model_mismatch": "its vectors come from another model than the watchlist's",
    "invalid_match": "a match without a match id or a subject",
    "unauthenticated_match": "a match not signed with its deployment's key (forged, or altered)",
    "replayed_match": "a match already announced as an alert revision (produced again, or an offset reset)",
    "stale_match": "a match captured longer ago than LFR_ALERT_MAX_MATCH_AGE_S (a late or replayed record)",
    "subject_not_enrolled": "a match for a subject not on its deployment's watchlist",
    "output_too_large": "what the stage would publish for it is over the broker's message size",
    "record_too_large": "the record is over its topic's max.message.bytes (dead-lettered as a reference, no copy)",
    "unpublishable": "the broker refused what the stage published for it, every try (dead-lettered as a reference)",
    "handler_error": "the stage failed on it with an unexpected error (a bug: see the detail)",
}

# A record that is fine but deliberately not processed: counted, not dead-lettered.
SKIPPED: dict[str, str] = {
    "deployment_closed": "its deployment is closed or expired",
    "deployment_not_active": "its deployment has not started yet",
    "outside_authorisation": "captured outside its deployment's authorised window (decided on capture time)",
    "watchlist_not_reviewed": "its deployment's watchlist, as it stands, has not had its pre-deployment review",
    "registry_unavailable": "Redis could not be reached to check its deployment (fail-closed)",
}

# A frame ingest sampled but did not publish (besides the admission reasons above).
FRAME_DROPPED: dict[str, str] = {
    "queue_full": "the camera's queue to the broker was full (the broker is slower than the camera)",
    "publish_failed": "the broker did not take it",
    "too_large": "it is over the broker's message size",
}

# A face found but not sent on, or not embedded: by quality (detect, and enrolment too) or by budget.
FACE_DROPPED: dict[str, str] = {
    "face_too_small": (
        "its shorter side is under the minimum (LFR_DETECT_MIN_FACE_PX, LFR_DEPLOYMENTS_ENROL_MIN_FACE_PX)"
    ),
    "too_blurred": "its sharpness is under the minimum",
    "pose_not_frontal": "the head is turned further than the maximum yaw",
    "not_due": "its track had a shot embedded less than LFR_DETECT_SHOT_INTERVAL_S before (still decided, on its "
    "track's template)",
    "not_better": "well under the quality of its track's best face so far, where a policy waits for a better one",
    "budget_spent": "its track had its LFR_DETECT_SHOT_BUDGET embeddings (still decided, on its track's template)",
}

# What limits the decision on a person's pass, counted when its track ends: it is decided all the same.
PASS_FLAGGED: dict[str, str] = {
    "single_face": "the pass was one face only: decided on that one shot",
    "never_frontal": "no face of the pass was frontal (head turned over about 25 degrees throughout)",
}

# An alert revision a reader (the console, `lfr alert`, the demo) does not show.
REVISION_REFUSED: dict[str, str] = {
    "forged": "not signed by its deployment's alert key: forged or altered",
    "out_of_order": "not newer than the revision of that alert already shown",
}

REASONS: dict[str, str] = {
    **DEAD_LETTER,
    **SKIPPED,
    **FRAME_DROPPED,
    **FACE_DROPPED,
    **PASS_FLAGGED,
    **REVISION_REFUSED,
}
