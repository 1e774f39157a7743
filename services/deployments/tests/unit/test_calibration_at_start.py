"""The deployments service refuses to start without the model's curves: a calibration file that lacks
the per-group FMR curves or the per-pass ratio names the command that writes them (issue 24)."""

import json
from types import SimpleNamespace

import pytest

from lfr_deployments.app import build
from lfr_faces import calibration
from lfr_platform.runtime import StartRefused
from lfr_platform.settings import PlatformSettings
from lfr_testing.deployments import deployments_settings

EMBEDDER = SimpleNamespace(model_id="sface-2021dec", provider="CPUExecutionProvider", dimension=128)


def _file(tmp_path, **changes) -> str:
    data = json.loads(calibration.calibration_path("sface-2021dec").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"per_pass": None}, "per_pass (written by `lfr eval --video --write-calibration (make eval-video)`)"),
        ({"fmr": {"curves": {}}}, "fmr (written by `lfr eval --all-pairs --write-calibration (make eval-all-pairs)`)"),
        ({"equitability_floor": None}, "equitability_floor (written by `lfr eval --write-calibration (make eval)`)"),
    ],
)
def test_a_calibration_without_its_curves_stops_the_service_naming_the_command(tmp_path, changes, says):
    settings = deployments_settings(tmp_path, calibration_file=_file(tmp_path, **changes))
    with pytest.raises(StartRefused, match="lacks") as refused:
        build(PlatformSettings(), settings, detector=object(), embedder=EMBEDDER)
    assert says in str(refused.value)


def test_a_calibration_for_another_model_is_refused(tmp_path):
    settings = deployments_settings(tmp_path, calibration_file=_file(tmp_path, model_id="arcface-r100"))
    with pytest.raises(StartRefused, match="is for model 'arcface-r100', not 'sface-2021dec'"):
        build(PlatformSettings(), settings, detector=object(), embedder=EMBEDDER)


def test_a_missing_calibration_file_says_how_to_make_one(tmp_path):
    settings = deployments_settings(tmp_path, calibration_file=str(tmp_path / "nowhere.json"))
    with pytest.raises(StartRefused, match="run `make calibrate`"):
        build(PlatformSettings(), settings, detector=object(), embedder=EMBEDDER)
