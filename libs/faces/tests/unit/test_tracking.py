"""Tracks and best shots, without I/O: association, its bounds, and the per-track budget."""

from lfr_detect.tracking import ShotPolicy, Track, Tracker


def test_a_face_moving_across_frames_keeps_its_track_and_two_faces_never_share_one():
    tracker = Tracker(max_age_s=2.0)
    first = tracker.assign("cam", [(100, 100, 60, 60), (400, 100, 60, 60)], t=0.0)
    assert first.started == 2 and first.tracks[0].track_id != first.tracks[1].track_id
    # 0.2 s later both moved 40 px (more than an IoU match at 5 fps allows for the faster one).
    second = tracker.assign("cam", [(440, 100, 62, 62), (140, 105, 60, 60)], t=0.2)
    assert second.started == 0
    assert [t.track_id for t in second.tracks] == [first.tracks[1].track_id, first.tracks[0].track_id]
    # Two faces close together are two tracks, each continued by the nearer one.
    third = tracker.assign("cam", [(180, 110, 60, 60), (480, 100, 62, 62), (900, 500, 50, 50)], t=0.4)
    assert third.started == 1 and len({t.track_id for t in third.tracks}) == 3


def test_a_track_ends_after_its_age_and_a_face_seen_again_starts_a_new_one():
    tracker = Tracker(max_age_s=1.0)
    track = tracker.assign("cam", [(100, 100, 60, 60)], t=0.0).tracks[0]
    later = tracker.assign("cam", [(100, 100, 60, 60)], t=1.5)
    assert later.ended == [track] and later.tracks[0].track_id != track.track_id


def test_frames_out_of_order_get_tracks_of_their_own_and_leave_the_others_alone():
    tracker = Tracker()
    track = tracker.assign("cam", [(100, 100, 60, 60)], t=10.0).tracks[0]
    late = tracker.assign("cam", [(100, 100, 60, 60)], t=9.0)
    assert late.out_of_order and late.tracks[0].track_id != track.track_id
    assert tracker.assign("cam", [(102, 100, 60, 60)], t=10.2).tracks[0].track_id == track.track_id


def test_memory_is_bounded_per_camera_and_idle_cameras_are_forgotten():
    tracker = Tracker(max_tracks=20, camera_idle_s=60)
    crowd = [(float(x * 70), float(y * 70), 50.0, 50.0) for x in range(10) for y in range(6)]  # 60 faces
    assignment = tracker.assign("busy", crowd, t=0.0)
    assert len(assignment.tracks) == 60 and len(tracker.cameras["busy"].tracks) == 20
    assert len(assignment.ended) == 40
    tracker.assign("other", [], t=100.0)
    assert "busy" not in tracker.cameras


def test_tracks_of_another_process_never_continue_here():
    a, b = Tracker(), Tracker()
    assert (
        a.assign("cam", [(0, 0, 50, 50)], 0).tracks[0].track_id
        != b.assign("cam", [(0, 0, 50, 50)], 0).tracks[0].track_id
    )


def test_the_first_shot_then_only_materially_better_ones_up_to_the_budget():
    policy = ShotPolicy(budget=3, min_gain=0.15)
    track = Track("p:1", (0, 0, 50, 50), 0, 0)
    decisions = [policy.choose(track, q) for q in (0.30, 0.32, 0.40, 0.41, 0.90, 0.99, 0.10)]
    assert decisions == [None, "not_better", None, "not_better", None, "budget_spent", "budget_spent"]
    assert (track.shots, track.best_quality) == (3, 0.90)
