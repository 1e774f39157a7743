"""`lfr transparency notice|record` against a real DeploymentService: the documents validate against
their schemas, agree with the deployment reports, and a token sees only what it may."""

import asyncio
import json

import jsonschema
import pytest

from lfr.v1 import deployments_pb2 as pb
from lfr_cli import transparency
from lfr_cli.main import main
from lfr_deployments.app import build
from lfr_testing.deployments import MANAGER_TOKEN, TEST_GRANTS, Api, create_request, deployments_settings, provenance
from lfr_testing.media import lfw
from lfr_testing.services import running

pytestmark = pytest.mark.integration

SCOPED = "scoped-viewer-token-0123456789"


async def test_a_notice_and_a_record_validate_agree_with_the_reports_and_respect_scopes(
    platform, tmp_path, data_dir, capsys, eventually
):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TEST_GRANTS))
    shell = build(platform.model_copy(update={"auth_tokens_file": tokens}), deployments_settings(tmp_path))
    async with running(shell):
        api = Api(shell.control.port)
        mine = await api("create", create_request(name="Op Mine"))
        theirs = await api("create", create_request(name="Op Theirs"))
        for deployment, person in ((mine, "Colin_Powell"), (theirs, "Ariel_Sharon")):
            image = pb.WatchlistImage(
                **provenance(), client_ref=person, subject_id=f"S-{person}", category="wanted",
                source_reference=f"PNC/{person}", approved_by="Insp. B", image=lfw(data_dir, person, 1).read_bytes(),
            )  # fmt: skip
            await api.enrol(deployment.deployment_id, [image])
        grant = {"token": SCOPED, "identity": "press-office", "role": "viewer", "deployments": [mine.deployment_id]}
        tokens.write_text(json.dumps([*TEST_GRANTS, grant]))
        address = ["--address", f"127.0.0.1:{shell.control.port}"]

        async def lfr(*args, token=MANAGER_TOKEN):
            code = await asyncio.to_thread(main, [*args, *address, "--token", token])
            return code, capsys.readouterr()

        async def scoped_notice():  # the token file is re-read when it changes
            code, out = await lfr("transparency", "notice", mine.deployment_id, token=SCOPED)
            assert code == 0, out.err
            return json.loads(out.out)

        notice = await eventually(scoped_notice, timeout_s=10)
        jsonschema.validate(notice, transparency.schema(transparency.NOTICE_SCHEMA))
        assert (notice["operation"], notice["watchlist_categories"]) == ("Op Mine", {"wanted": 1})
        code, out = await lfr("transparency", "notice", theirs.deployment_id, token=SCOPED)
        assert code == 5 and "PERMISSION_DENIED" in out.err

        for deployment in (mine, theirs):
            await api("close", deployment.deployment_id, "operation over")
        code, out = await lfr("transparency", "record", "--from", "2000-01-01", "--to", "2100-01-01", "--out",
                              str(tmp_path / "published"))  # fmt: skip
        assert code == 0, out.err
        record = json.loads((tmp_path / "published" / "record-2000-01-01-2100-01-01.json").read_text())
        jsonschema.validate(record, transparency.schema(transparency.RECORD_SCHEMA))
        reports = {d.deployment_id: await api("report", d.deployment_id) for d in (mine, theirs)}
        assert {e["deployment_id"] for e in record["deployments"]} == set(reports)
        for entry in record["deployments"]:
            report = reports[entry["deployment_id"]]
            assert (entry["faces_scanned"], entry["alerts"], entry["watchlist_size"]) == (
                report.faces_scanned, report.outcomes.alerts, report.watchlist_images
            )  # fmt: skip
        published = "".join(p.read_text() for p in (tmp_path / "published").iterdir())
        assert "S-Colin_Powell" not in published and "Supt. Example" not in published
        assert record["totals"]["deployments"] == 2
        code, out = await lfr("transparency", "record", "--from", "1990-01-01", "--to", "1991-01-01")
        assert code == 0 and json.loads(out.out)["deployments"] == []
        code, out = await lfr("transparency", "record", "--from", "yesterday", "--to", "1991-01-01")
        assert code == 2 and "--from takes an ISO 8601" in out.err
