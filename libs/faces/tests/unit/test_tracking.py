"""Tracks and the shot policy, without I/O: association, its bounds, and which shots are embedded."""

from lfr_faces.tracking import ShotPolicy, Track, Tracker, pass_flags


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


def test_the_first_shot_at_once_then_one_per_interval_spread_over_the_pass():
    policy = ShotPolicy(interval_s=1.0, budget=20)
    track = Track("p:1", (0, 0, 50, 50), 0, 0)
    # 5 fps for 3 s, every face of the same quality: shots at 0, 1, 2 and 3 s.
    decisions = [policy.choose(track, 0.5, i / 5) for i in range(16)]
    assert [i / 5 for i, d in enumerate(decisions) if d is None] == [0.0, 1.0, 2.0, 3.0]
    assert set(d for d in decisions if d) == {"not_due"}
    # The budget grows with the pass: a 10 s pass at 5 fps gets 11 shots.
    long = Track("p:2", (0, 0, 50, 50), 0, 0)
    assert sum(policy.choose(long, 0.5, i / 5) is None for i in range(51)) == 11


def test_a_poor_face_can_wait_for_a_better_one_and_the_budget_caps_a_long_stay():
    policy = ShotPolicy(interval_s=1.0, budget=3, min_relative_quality=0.5)
    track = Track("p:1", (0, 0, 50, 50), 0, 0)
    assert policy.choose(track, 0.8, 0.0) is None
    assert policy.choose(track, 0.3, 1.0) == "not_better"  # a blink: under half the best so far
    assert policy.choose(track, 0.5, 1.2) is None  # due since 1.0 s, and good enough
    assert policy.choose(track, 0.9, 2.2) is None
    assert policy.choose(track, 0.9, 60.0) == "budget_spent"
    assert (track.shots, track.best_quality) == (3, 0.9)


def test_a_pass_of_one_face_or_never_frontal_is_flagged():
    policy = ShotPolicy()
    one = Track("p:1", (0, 0, 50, 50), 0, 0)
    policy.choose(one, 0.5, 0.0, yaw=0.1)
    assert pass_flags(one) == ["single_face"]
    turned = Track("p:2", (0, 0, 50, 50), 0, 0, hits=8)
    for i in range(8):
        policy.choose(turned, 0.5, i / 5, yaw=0.8)
    assert pass_flags(turned) == ["never_frontal"]
    turned.frontal = True
    assert pass_flags(turned) == []
