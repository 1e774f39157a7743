"""The realistic case, end to end: people enrolled from ONE photo of another occasion (the shared
`xdomain` pairs) among strangers, each person's clip streamed as a camera of its own (`lfr demo`),
and every other shared video as a camera of the same deployment.

The threshold is not typed in: the review derives it from the policy's false-alert budget and the
list's size (docs/deployments.md#the-operating-point). A 104-entry list runs lower than the single
0.69 that served every list before, and at its own threshold all four people alert on their own
camera (Fei-Fei Li scores 0.67-0.68, missed at 0.69), while nothing else alerts: no person on another's
camera, no stranger of the list, nobody in the 20 other clips. A 2,500-entry list gets a higher
threshold, and the same clips raise nothing against it either.
"""

import csv
import json
import shutil

import pytest

from lfr_deployments.policy import SHIPPED, DeploymentPolicy
from lfr_eval.analysis import ENROL, Cache, Models, analyse_all
from lfr_faces import calibration
from lfr_testing.stack import run_demo

pytestmark = pytest.mark.e2e

PEOPLE = ("donald-trump", "fei-fei-li", "shinzo-abe", "theresa-may")
STRANGERS = 100
# The single threshold every deployment ran at before it was derived per list (sized for 10,000 entries).
ONE_FOR_ALL = 0.69


def _derived(entries: int) -> float:
    budget = DeploymentPolicy.load(SHIPPED).false_alert_budget
    point = calibration.load("sface-2021dec").operating_point(entries, budget)
    assert point.threshold is not None, f"no threshold meets the shipped budget for {entries} entries"
    return point.threshold


def _lfw_firsts(data_dir, n: int) -> list[dict]:
    with (data_dir / "lfw" / "labels.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if r["path"].endswith("_0001.jpg")][:n]


def _enrollable(data_dir, models_dir, cache, rows: list[dict], n: int) -> list[dict]:
    """The first `n` rows whose photo the deployments service's own Enroller takes (one frontal face):
    the list holds exactly the strangers asked for."""
    paths = [data_dir / "lfw" / "images" / r["path"] for r in rows]
    models = Models(models_dir / "yunet-2023mar.onnx", models_dir / "sface-2021dec.onnx")
    results = analyse_all([(p, ENROL) for p in paths], models, Cache(cache, models.fingerprint()))
    taken = [r for r, p in zip(rows, paths, strict=True) if results[(p, ENROL)].status == "ok"]
    assert len(taken) >= n, f"only {len(taken)} of {len(rows)} LFW photos enrol"
    return taken[:n]


def _demo(tmp_path, data_dir, models_dir, watchlist, videos, timeout=600) -> tuple[list[dict], dict, str]:
    result = run_demo(
        tmp_path,
        data_dir,
        models_dir,
        "--watchlist",
        str(watchlist),
        "--video",
        ",".join(str(v) for v in videos),
        "--drain-timeout",
        str(timeout - 120),
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[:-1], lines[-1]["summary"], result.stderr


def test_all_four_people_alert_on_their_own_camera_at_their_lists_derived_threshold_and_nothing_else(
    tmp_path, data_dir, models_dir
):
    watchlist = tmp_path / "watchlist"
    for person in PEOPLE:
        (watchlist / person).mkdir(parents=True)
        shutil.copy(data_dir / "xdomain" / "watchlist" / person / "photo.jpg", watchlist / person / "photo.jpg")
    for row in _enrollable(data_dir, models_dir, tmp_path / "cache", _lfw_firsts(data_dir, 2 * STRANGERS), STRANGERS):
        (watchlist / row["identity"]).mkdir()
        shutil.copy(data_dir / "lfw" / "images" / row["path"], watchlist / row["identity"])
    others = sorted((data_dir / "video").glob("*.mp4"))
    assert len(others) == 20
    videos = [data_dir / "xdomain" / "video" / f"{person}.mp4" for person in PEOPLE] + others
    cameras = {person: f"cam-{i}" for i, person in enumerate(PEOPLE, start=1)}

    alerts, summary, stderr = _demo(tmp_path, data_dir, models_dir, watchlist, videos)
    point = summary["operating_point"]
    entries = point["entries"]
    assert entries == len(PEOPLE) + STRANGERS, stderr[-3000:]  # one photo each: no templates
    threshold = summary["threshold"]
    assert threshold == pytest.approx(_derived(entries)) and point["threshold_source"] == "derived"
    assert threshold < ONE_FOR_ALL
    assert f"threshold {threshold:.3f} derived for {entries} entries" in stderr
    seen = {(a["subject_id"], a["camera_id"]) for a in alerts}
    assert seen == {(person, cameras[person]) for person in PEOPLE}, stderr[-3000:]
    assert all(a["score"] >= a["threshold"] == pytest.approx(threshold) for a in alerts)
    # Each pass is decided on about one shot per 0.8 s of it, not on every face.
    assert summary["tracks"] <= summary["faces_embedded"] < summary["faces"] / 3


def test_a_longer_list_gets_a_higher_threshold_and_the_same_strangers_raise_no_alert(tmp_path, data_dir, models_dir):
    """About 2,500 entries: every LFW identity's first photo (some are refused: several faces, a turned
    head), and the second photo of enough others to pass 2,500 with their templates."""
    watchlist = tmp_path / "watchlist"
    firsts = _lfw_firsts(data_dir, 10_000)
    for row in firsts:
        (watchlist / row["identity"]).mkdir(parents=True)
        shutil.copy(data_dir / "lfw" / "images" / row["path"], watchlist / row["identity"])
    seconds = sorted((data_dir / "lfw" / "images").glob("*/*_0002.jpg"))[:150]
    for photo in seconds:
        shutil.copy(photo, watchlist / photo.parent.name)
    others = sorted((data_dir / "video").glob("*.mp4"))

    alerts, summary, stderr = _demo(tmp_path, data_dir, models_dir, watchlist, others, timeout=900)
    entries = summary["operating_point"]["entries"]
    assert 2_500 <= entries <= 3_200, stderr[-3000:]
    assert summary["threshold"] == pytest.approx(_derived(entries))
    assert summary["threshold"] > _derived(len(PEOPLE) + STRANGERS)
    assert alerts == [], [(a["subject_id"], a["camera_id"], a["score"]) for a in alerts]
    assert summary["faces"] > 0 and summary["tracks"] > 20  # the strangers were seen, and searched
