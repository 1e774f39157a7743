"""A network camera for tests: an HTTP MJPEG stream of a real clip that can be switched off and on.

In a test's event loop: `camera = MjpegCamera(clip, port); await camera.on(); ...; await camera.off()`.
As a process (for tests that run the CLI): `python -m lfr_testing.mjpeg CLIP PORT`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import cv2
from aiohttp import web


class MjpegCamera:
    def __init__(self, clip: Path, port: int, fps: float = 25.0) -> None:
        capture = cv2.VideoCapture(str(clip))
        self.frames = []
        while (frame := capture.read())[0]:
            self.frames.append(cv2.imencode(".jpg", frame[1])[1].tobytes())
        capture.release()
        self.port = port
        self.interval = 1.0 / fps
        self.runner: web.AppRunner | None = None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await response.prepare(request)
        i = 0
        while True:
            jpeg = self.frames[i % len(self.frames)]
            i += 1
            await response.write(
                b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
            )
            await asyncio.sleep(self.interval)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"

    async def on(self) -> None:
        app = web.Application()
        app.router.add_get("/cam.mjpg", self._stream)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def off(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _serve(clip: Path, port: int) -> None:
    camera = MjpegCamera(clip, port)
    await camera.on()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1]), int(sys.argv[2])))
