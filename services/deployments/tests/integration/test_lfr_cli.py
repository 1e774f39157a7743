"""The `lfr` command against a real DeploymentService: what the platform team types."""

import asyncio
import json
import shutil

import pytest

from lfr_cli.main import main
from lfr_testing.deployments import MANAGER_TOKEN, VIEWER_TOKEN
from lfr_testing.media import lfw

pytestmark = pytest.mark.integration


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
    assert code == 2 and "below the floor" in out.err

    code, out = await lfr("deployment", "close", deployment_id, "--reason", "done", "--json")
    closed = json.loads(out.out)
    assert code == 0 and closed["state"] == "closed" and closed["deletion"]["watchlist_points_deleted"] == 3
    assert (
        await lfr(
            "watchlist", "enrol", deployment_id, str(watchlist), "--category", "wanted", "--approved-by", "Insp. B"
        )
    )[0] == 4  # FAILED_PRECONDITION: closed
