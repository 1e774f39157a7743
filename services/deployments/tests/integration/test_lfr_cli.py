"""The `lfr` command against a real DeploymentService: what the platform team types."""

import asyncio
import datetime as dt
import json
import shutil
import time

import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format

from lfr.v1 import common_pb2
from lfr_cli.main import main
from lfr_contracts import AUDIT_RECORDED
from lfr_platform.registry import DeploymentRegistry, RedisKeys, admit
from lfr_testing.deployments import MANAGER_TOKEN, VIEWER_TOKEN
from lfr_testing.kafka import decoded, read
from lfr_testing.media import lfw

pytestmark = pytest.mark.integration

RECENT = (dt.date.today() - dt.timedelta(days=30)).isoformat()
PROVENANCE = ("--image-source", "custody", "--legal-basis", "dpa_2018_part_3", "--image-date", RECENT)


async def test_create_enrol_get_list_close_with_json_output_and_exit_statuses(deployments, data_dir, tmp_path, capsys):
    address = ["--address", f"127.0.0.1:{deployments.control.port}"]

    async def lfr(*args, token=MANAGER_TOKEN):
        code = await asyncio.to_thread(main, [*args, *address, "--token", token])
        return code, capsys.readouterr()

    code, out = await lfr(
        "deployment",
        "create",
        "--name",
        "Op Harbour",
        "--purpose",
        "wanted persons",
        "--officer",
        "Supt. A",
        "--hours",
        "2",
        "--camera",
        "van-1/cam-1",
        "--location",
        "Station Road",
        "--where",
        "crime_hotspot",
    )
    assert code == 0
    deployment_id = out.out.strip()
    assert deployment_id.startswith("dep-")

    watchlist = tmp_path / "watchlist"
    for subject, numbers in (("Colin_Powell", (1, 2)), ("Ariel_Sharon", (1,))):
        (watchlist / subject).mkdir(parents=True)
        for n in numbers:
            shutil.copy(lfw(data_dir, subject, n), watchlist / subject / f"{n}.jpg")
    (watchlist / "S-999").mkdir()
    (watchlist / "S-999" / "scan.jpg").write_bytes(b"not really a jpeg")
    code, out = await lfr(
        "watchlist",
        "enrol",
        deployment_id,
        str(watchlist),
        "--category",
        "wanted",
        "--approved-by",
        "Insp. B",
        *PROVENANCE,
        "--json",
    )
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert code == 0
    assert [(r["file"], r["status"], r["reason"]) for r in rows] == [
        ("Ariel_Sharon/1.jpg", "enrolled", ""),
        ("Colin_Powell/1.jpg", "enrolled", ""),
        ("Colin_Powell/2.jpg", "enrolled", ""),
        ("S-999/scan.jpg", "rejected", "not_an_image"),
    ]
    assert rows[0]["subject_id"] == "Ariel_Sharon" and "3 enrolled, 1 rejected" in out.err

    code, out = await lfr("deployment", "get", deployment_id, "--json")
    got = json.loads(out.out)
    assert code == 0 and got["state"] == "active" and got["enrolled_images"] == 3 and got["enrolled_subjects"] == 2
    code, out = await lfr("deployment", "list", "--json", token=VIEWER_TOKEN)
    assert code == 0 and [json.loads(line)["deployment_id"] for line in out.out.splitlines()] == [deployment_id]

    assert (await lfr("deployment", "get", "dep-0000000000000000"))[0] == 3  # NOT_FOUND
    code, out = await lfr("deployment", "close", deployment_id, token=VIEWER_TOKEN)
    assert code == 5 and "PERMISSION_DENIED" in out.err
    assert (
        await lfr(
            "watchlist",
            "enrol",
            deployment_id,
            str(tmp_path / "nowhere"),
            "--category",
            "wanted",
            "--approved-by",
            "Insp. B",
        )
    )[0] == 2
    code, out = await lfr(
        "deployment",
        "create",
        "--name",
        "x",
        "--purpose",
        "p",
        "--officer",
        "o",
        "--threshold",
        "0.3",
        "--location",
        "l",
        "--where",
        "crime_hotspot",
    )
    assert code == 2 and "below the model minimum" in out.err

    code, out = await lfr("deployment", "close", deployment_id, "--reason", "done", "--json")
    closed = json.loads(out.out)
    assert code == 0 and closed["state"] == "closed" and closed["deletion"]["watchlist_points_deleted"] == 3
    assert (
        await lfr(
            "watchlist",
            "enrol",
            deployment_id,
            str(watchlist),
            "--category",
            "wanted",
            "--approved-by",
            "Insp. B",
            *PROVENANCE,
        )
    )[0] == 4  # FAILED_PRECONDITION: closed


async def test_a_manifest_gives_each_photo_its_provenance_and_nothing_matches_before_the_review(
    platform, deployments, data_dir, tmp_path, capsys
):
    """The manifest beside the photos: a row for an absent photo, or a photo without a row, stops the
    command before anything is sent; an image older than the policy allows is refused unless its row
    says why (audited); the watchlist is matched only once an officer has reviewed it (not a viewer)."""
    address = ["--address", f"127.0.0.1:{deployments.control.port}"]

    async def lfr(*args, token=MANAGER_TOKEN):
        code = await asyncio.to_thread(main, [*args, *address, "--token", token])
        return code, capsys.readouterr()

    code, out = await lfr(
        "deployment", "create", "--name", "Op Manifest", "--purpose", "wanted persons", "--officer", "Supt. A",
        "--location", "Station Road", "--where", "crime_hotspot", "--camera", "van-1/cam-1",
        "--expected-faces", "50000",
    )  # fmt: skip
    assert code == 0, out.err
    deployment_id = out.out.strip()
    assert "predicted false alerts" in out.err and "in 50,000 faces" in out.err
    # The trade-off the authorising officer weighs: this list, and lists 3 and 10 times larger.
    assert "derived for 15,000 entries under a budget of 1 in 1,000 faces" in out.err
    assert all(f"{n:,}" in out.err for n in (15_000, 45_000, 150_000)), out.err
    created = json.loads((await lfr("deployment", "get", deployment_id, "--json"))[1].out)
    watchlist = tmp_path / "watchlist"
    for subject in ("Colin_Powell", "Ariel_Sharon"):
        (watchlist / subject).mkdir(parents=True)
        shutil.copy(lfw(data_dir, subject, 1), watchlist / subject / "1.jpg")
    row = {"category": "wanted", "image_source": "custody", "legal_basis": "dpa_2018_part_3", "approved_by": "Insp. B"}
    rows = [
        {"file": "Colin_Powell/1.jpg", **row, "image_date": RECENT},
        {"file": "Ariel_Sharon/1.jpg", **row, "image_date": "2003-05-01"},
    ]
    manifest = watchlist / "manifest.json"
    for bad, message in (
        ([*rows, {"file": "Nobody/1.jpg", **row, "image_date": RECENT}], "rows for photos that are not in"),
        (rows[:1], "Ariel_Sharon/1.jpg has no row in the manifest"),
        ([rows[0], {**rows[1], "minor": "perhaps"}], "minor must be true or false"),
    ):
        manifest.write_text(json.dumps(bad))
        code, out = await lfr("watchlist", "enrol", deployment_id, str(watchlist))
        assert code == 2 and message in out.err
    assert (await lfr("deployment", "get", deployment_id, "--json"))[1].out.count('"enrolled_images": 0') == 1

    manifest.write_text(json.dumps(rows))
    code, out = await lfr("watchlist", "enrol", deployment_id, str(watchlist), "--json")
    results = {r["file"]: r for r in map(json.loads, out.out.splitlines())}
    assert results["Colin_Powell/1.jpg"]["status"] == "enrolled"
    assert results["Ariel_Sharon/1.jpg"]["reason"] == "image_too_old"
    assert "the policy allows 5 years" in results["Ariel_Sharon/1.jpg"]["detail"]
    assert "nothing is matched until the watchlist is reviewed" in out.err
    manifest.write_text(json.dumps([rows[0], {**rows[1], "age_override_reason": "the only photo held"}]))
    code, out = await lfr("watchlist", "enrol", deployment_id, str(watchlist), "--json")
    results = {r["file"]: r for r in map(json.loads, out.out.splitlines())}
    assert results["Ariel_Sharon/1.jpg"]["status"] == "enrolled"

    client = aioredis.from_url(platform.redis_url)
    registry = DeploymentRegistry(client, RedisKeys(platform.redis_prefix), platform.key_wrap())
    camera = common_pb2.CameraRef(deployment_id=deployment_id, van_id="van-1", camera_id="cam-1")
    try:
        assert (await admit(registry, camera, time.time())).reason == "watchlist_not_reviewed"
        code, out = await lfr("watchlist", "review", deployment_id, "--officer", "Insp. R", token=VIEWER_TOKEN)
        assert code == 5 and "PERMISSION_DENIED" in out.err
        code, out = await lfr("watchlist", "review", deployment_id, "--officer", "Insp. R", "--json")
        reviewed = json.loads(out.out)
        assert code == 0 and (reviewed["reviewed_by"], reviewed["reviewed_images"]) == ("Insp. R", 2)
        # Derived again for the two entries reviewed: lower than for the 15,000 the size limit allowed.
        assert reviewed["threshold"] < created["threshold"] and reviewed["operating_point"]["entries"] == 2
        assert reviewed["operating_point"]["threshold_source"] == "derived"
        assert (await admit(registry, camera, time.time())).deployment_id == deployment_id
        # One more image after the review: the review no longer covers the watchlist.
        (watchlist / "Colin_Powell" / "2.jpg").write_bytes(lfw(data_dir, "Colin_Powell", 2).read_bytes())
        manifest.write_text(json.dumps([*rows[:1], {**rows[0], "file": "Colin_Powell/2.jpg"}]))
        shutil.rmtree(watchlist / "Ariel_Sharon")
        code, out = await lfr("watchlist", "enrol", deployment_id, str(watchlist), "--json")
        assert code == 0 and (await admit(registry, camera, time.time())).reason == "watchlist_not_reviewed"
        # Reviewed again: Colin Powell's two photos also make one template (gallery fusion), matched
        # like an entry but no image: the review covers the three photos.
        code, out = await lfr("watchlist", "review", deployment_id, "--officer", "Insp. R", "--json")
        assert code == 0 and json.loads(out.out)["reviewed_images"] == 3
        assert deployments.control.service.index.count(deployment_id) == 4
    finally:
        await client.aclose()

    events = decoded(AUDIT_RECORDED, await read(platform, AUDIT_RECORDED, count=14, settle_s=1.0))
    by_event: dict[str, list[dict]] = {}
    for a in events:
        by_event.setdefault(a.event, []).append(json_format.MessageToDict(a.details))
    assert [(d["officer"], d["templates"]) for d in by_event["watchlist.reviewed"]] == [("Insp. R", 0), ("Insp. R", 1)]
    # Each derivation audited with its inputs: at create for the size limit, at each review for the entries.
    steps = [(d["step"], d["operating_point"]["entries"]) for d in by_event["threshold.set"]]
    assert steps == [("create", 15_000), ("review", 2), ("review", 4)]
    old = [d for d in by_event["watchlist.image_enrolled"] if "age_override_reason" in d]
    assert old[0]["age_override_reason"] == "the only photo held" and old[0]["image_date"] == "2003-05-01"
    assert by_event["watchlist.enrolled"][-1]["review_cleared"] is True
    assert "access.denied" in by_event


async def test_plan_prints_the_tradeoff_before_anything_is_created(deployments, capsys):
    """`lfr deployment plan`: the threshold a list of N entries gets under the policy's budget, what it
    predicts, for it and for lists 3 and 10 times larger; any token that reads deployments may ask, and
    nothing is created. A list no threshold up to the model's maximum admits exits 1 with the figures."""
    address = ["--address", f"127.0.0.1:{deployments.control.port}"]

    async def lfr(*args, token=VIEWER_TOKEN):
        code = await asyncio.to_thread(main, [*args, *address, "--token", token])
        return code, capsys.readouterr()

    code, out = await lfr("deployment", "plan", "--entries", "300", "--expected-faces", "50000")
    assert code == 0, out.err
    point = deployments.control.service.policy.point(300)
    assert f"threshold {point.threshold:.3f} derived for 300 entries under a budget of 1 in 1,000 faces" in out.err
    assert all(f" {n:,} " in out.err for n in (300, 900, 3_000)), out.err  # the trade-off table's rows
    assert "in 50,000 faces" in out.err  # the false alerts predicted for the faces expected
    code, out = await lfr("deployment", "plan", "--entries", "300", "--json")
    planned = json.loads(out.out)["operating_point"]
    assert planned["derived_threshold"] == pytest.approx(point.threshold) and len(planned["tradeoff"]) == 3
    assert [row["entries"] for row in planned["tradeoff"]] == [300, 900, 3_000]
    assert (await lfr("deployment", "list", "--json"))[1].out.strip() in ("", "[]")  # nothing was created

    code, out = await lfr("deployment", "plan", "--entries", "5000000")
    assert code == 1 and "too large" in out.err and f"the largest list that fits is {point.largest_list:,}" in out.err
    code, out = await lfr("deployment", "plan", "--entries", "0")
    assert code == 2 and "entries must be 1 to" in out.err
