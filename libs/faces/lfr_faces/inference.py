"""onnxruntime sessions on the best provider that actually loads, and which one that was.

onnxruntime-gpu lists CUDA among the available providers even where CUDA cannot load, and then
silently runs on the CPU; so the provider is read back from the session, logged, and exported as
`lfr_model_info{provider=...}`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def create_session(path: Path, intra_op_threads: int = 1, providers: tuple[str, ...] = PREFERENCE):
    """A session on the first usable provider of `providers`; returns (session, provider used).

    One intra-op thread is fastest on small machines (measured on 2 cores): parallelise across
    processes instead.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    available = set(ort.get_available_providers())
    wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), options, providers=wanted)
    used = session.get_providers()[0]
    if used != wanted[0]:
        log.warning("%s: %s could not load, running on %s", path.name, wanted[0], used)
    else:
        log.info("%s runs on %s", path.name, used)
    return session, used
