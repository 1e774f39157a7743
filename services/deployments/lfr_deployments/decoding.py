"""Enrolment photos are decoded in worker processes whose address space the operating system bounds.

An untrusted photo's header cannot say what decoding it takes: a baseline JPEG with one scan per
component, read as 70 MB from its header, took +316 MB; a progressive JPEG or a PNG, hundreds more
(docs/decisions/0018). So nothing is estimated. Each worker sets RLIMIT_AS on itself, once its
modules are loaded, to its own address space plus `memory_bytes`; a decode that needs more fails its
allocation there (libjpeg, libpng and libwebp report it; OpenCV raises) or kills the worker, and the
photo is refused `image_too_complex`. The worker is then replaced: a refused bomb leaves nothing
behind. The service's own process only ever receives the decoded photo reduced to `max_side` on its
longer side (at most 12 MB at 2,000 px), so what enrolment adds to it is bounded by the pool's size,
whatever the format.

The pool has `size` workers, started when first needed; a photo waits for a free one. Workers are
plain `python -m lfr_deployments.decoding` processes over pipes, not multiprocessing's: spawn and
forkserver would import the service's __main__ (gRPC, the models) into each of them.

Protocol, over the worker's stdin and stdout: a request is REQUEST (bytes, OpenCV flag, max side)
and the file; a reply is REPLY (status, height, width, detail bytes), the detail, then for a decoded
photo its height x width x 3 BGR bytes.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import resource
import struct
import subprocess
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from lfr_faces.images import ImageRejected

REQUEST = struct.Struct(">QiI")
REPLY = struct.Struct(">BIII")
DECODED, TOO_COMPLEX, UNDECODABLE = 0, 1, 2
# A 7000x7000 photo of any accepted format decodes in 0.1-1.3 s (2-core VM, 2026-12-04); one that
# takes longer than this is a bomb of another kind (CPU), and its worker is killed.
DECODE_TIMEOUT_S = 30.0
# The worker's libraries start no threads of their own (each thread's stack is address space too).
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class _Outcome:
    status: int
    detail: str
    image: np.ndarray | None = None


class _Worker:
    """One decoding process and its pipes. exchange() blocks: it runs in a thread."""

    def __init__(self, memory_bytes: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lfr_deployments.decoding", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **_WORKER_ENV},
        )

    def exchange(self, data: bytes, flag: int, max_side: int) -> _Outcome:
        died = _Outcome(TOO_COMPLEX, "its decoder process died decoding it")
        try:
            self.process.stdin.write(REQUEST.pack(len(data), flag, max_side))
            self.process.stdin.write(data)
            self.process.stdin.flush()
            head = _read(self.process.stdout, REPLY.size)
            if head is None:
                return died
            status, height, width, detail_size = REPLY.unpack(head)
            detail = _read(self.process.stdout, detail_size)
            if status != DECODED or detail is None:
                return _Outcome(status, (detail or b"").decode()) if detail is not None else died
            if max(height, width) > max_side:  # never from our worker: the bound must not rest on it
                raise ValueError(f"decoder answered {width}x{height}, over {max_side}")
            pixels = bytearray(height * width * 3)
            if not _read_into(self.process.stdout, pixels):
                return died
            return _Outcome(DECODED, "", np.frombuffer(pixels, np.uint8).reshape(height, width, 3))
        except (OSError, ValueError):  # a broken pipe: the worker died, or was killed on time
            return died

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _read(stream, size: int) -> bytes | None:
    buffer = bytearray(size)
    return bytes(buffer) if _read_into(stream, buffer) else None


def _read_into(stream, buffer: bytearray) -> bool:
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = stream.readinto(view[got:])
        if not n:
            return False
        got += n
    return True


class DecoderPool:
    """Decodes untrusted photos in `size` worker processes, each limited to `memory_bytes` of address
    space over its own; the decoded photo comes back reduced to `max_side` (its longer side)."""

    def __init__(self, size: int, memory_bytes: int, max_side: int, timeout_s: float = DECODE_TIMEOUT_S) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self.max_side = max_side
        self.timeout_s = timeout_s
        self.replaced = 0  # workers replaced after a refusal, a death or a timeout (tests, the bench)
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all]

    async def decode(self, data: bytes, flag: int) -> np.ndarray:
        """BGR pixels, longer side at most max_side; ImageRejected image_too_complex or undecodable."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            worker = self._idle.pop() if self._idle else None
            if worker is not None and worker.process.poll() is not None:  # died idle (OOM killer, a crash)
                self._all.discard(worker)
                self.replaced += 1
                loop.run_in_executor(None, worker.stop)
                worker = None
            if worker is None:
                worker = _Worker(self.memory_bytes)
                self._all.add(worker)
            expired: list[bool] = []
            timer = loop.call_later(self.timeout_s, lambda: (expired.append(True), worker.process.kill()))
            outcome = None
            try:
                outcome = await loop.run_in_executor(None, worker.exchange, data, flag, self.max_side)
            finally:
                timer.cancel()
                if outcome is not None and outcome.status != TOO_COMPLEX and worker.process.poll() is None:
                    self._idle.append(worker)
                else:  # refused, dead, timed out or abandoned: a fresh process for the next photo
                    self._all.discard(worker)
                    self.replaced += 1
                    worker.process.kill()
                    loop.run_in_executor(None, worker.stop)  # reaps it; nothing waits on that
        if outcome.status == DECODED:
            return outcome.image
        if outcome.status == UNDECODABLE:
            raise ImageRejected("undecodable", outcome.detail)
        why = f"it took over {self.timeout_s:g} s to decode" if expired else outcome.detail
        raise ImageRejected(
            "image_too_complex",
            f"decoding it takes more than the {self.memory_bytes / 2**20:.0f} MB a photo may ({why}): save it as a "
            "baseline JPEG, or with fewer pixels",
        )

    async def close(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), []
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))


# --- the worker process


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


# libjpeg and libpng report a failed allocation as a failed decode (imdecode returns None), not as
# an exception; errno, left at ENOMEM by the failed mmap/malloc, tells it from a corrupt file.
# (glibc's thread-local errno; ctypes.get_errno reads only ctypes' own copy.)
_errno_location = ctypes.CDLL(None).__errno_location
_errno_location.restype = ctypes.POINTER(ctypes.c_int)


def _decode(data: bytes, flag: int, max_side: int) -> _Outcome:
    _errno_location()[0] = 0
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        out_of_memory = image is None and _errno_location()[0] == errno.ENOMEM
        if image is not None and max(image.shape[:2]) > max_side:
            scale = max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    except MemoryError:
        out_of_memory = True
    except cv2.error as exc:
        if exc.code != cv2.Error.StsNoMem:
            return _Outcome(UNDECODABLE, "the data could not be decoded")
        out_of_memory = True
    if out_of_memory:
        return _Outcome(TOO_COMPLEX, "an allocation of its decoder failed")
    if image is None:
        return _Outcome(UNDECODABLE, "the data could not be decoded")
    return _Outcome(DECODED, "", np.ascontiguousarray(image))


def serve(memory_bytes: int) -> None:
    """The worker: decode requests from stdin until it closes; exit after a photo too complex."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the replies
    requests = sys.stdin.buffer
    cv2.setNumThreads(1)
    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        head = _read(requests, REQUEST.size)
        if head is None:
            return
        size, flag, max_side = REQUEST.unpack(head)
        try:
            data = _read(requests, size)
            if data is None:
                return
            outcome = _decode(data, flag, max_side)
            del data
        except MemoryError:
            outcome = _Outcome(TOO_COMPLEX, "its file does not fit")
        detail = outcome.detail.encode()
        shape = outcome.image.shape[:2] if outcome.image is not None else (0, 0)
        out.write(REPLY.pack(outcome.status, *shape, len(detail)) + detail)
        if outcome.image is not None:
            out.write(memoryview(outcome.image).cast("B"))
        out.flush()
        if outcome.status == TOO_COMPLEX:
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]))
