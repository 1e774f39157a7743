"""Running a service's shell in the test's event loop, and seeding deployments."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time
import traceback

import redis.asyncio as aioredis

from lfr_platform import registry, sealing
from lfr_platform.equity import EquityPolicy
from lfr_platform.registry import DeploymentRegistry, RedisKeys, new_deployment_record, write_new_deployment
from lfr_platform.service import ServiceShell
from lfr_platform.settings import PlatformSettings
from lfr_platform.signing import new_alert_key
from lfr_testing.deployments import shipped_equity, shipped_policy


@contextlib.asynccontextmanager
async def running(shell: ServiceShell, timeout_s: float = 60.0):
    """Run the shell until the block ends; wait for it to be ready first (or fail with its error)."""
    stop = asyncio.Event()
    task = asyncio.create_task(shell.run(stop))
    deadline = time.monotonic() + timeout_s
    while not shell.health.ready:
        if task.done():
            task.result()
            raise AssertionError(f"{shell.name} ended before it was ready")
        if time.monotonic() > deadline:
            raise AssertionError(f"{shell.name} not ready within {timeout_s}s: {shell.health.report()}")
        await asyncio.sleep(0.05)
    try:
        yield shell
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            stuck = _task_stacks()
            task.cancel()
            raise AssertionError(f"{shell.name} did not stop within {timeout_s}s; its tasks:\n{stuck}") from None


def _task_stacks() -> str:
    """Where every task of the loop and every thread waits (what a stop that hangs is waiting on)."""
    out = io.StringIO()
    for t in asyncio.all_tasks():
        if t is asyncio.current_task():
            continue
        out.write(f"--- {t!r}\n")
        awaited = t.get_coro()
        while awaited is not None:  # down the chain of awaits (a task's stack shows only its top)
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:  # compiled coroutines (grpc's) have no line number
                out.write(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}\n")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
            if awaited is not None and not hasattr(awaited, "cr_frame") and not hasattr(awaited, "gi_frame"):
                out.write(f"  awaiting {awaited!r}\n")
                break
    for ident, frame in sys._current_frames().items():
        out.write(f"--- thread {ident}\n")
        traceback.print_stack(frame, file=out)
    return out.getvalue()


async def seed_deployment(
    platform: PlatformSettings,
    *,
    cameras: tuple[tuple[str, str], ...] = (),
    threshold: float = 0.5,
    model_id: str = "sface-2021dec",
    start_offset_s: float = -3600.0,
    subjects: tuple[str, ...] = ("S1", "S2", "S9"),
    reviewed: bool = True,
    min_margin: float = 0.0,
    perceived_groups: dict[str, list[str]] | None = None,
    equity: EquityPolicy | None = None,
    false_alert_budget: float | None = 1 / 1000,
) -> tuple[str, bytes]:
    """An open deployment record and its data key, written as the deployments service writes them
    (lfr_platform.registry), with `subjects` on its watchlist (as enrolment records them). Its window
    opened `start_offset_s` ago (an hour: tests may produce records captured minutes back); its
    watchlist is `reviewed` (or nothing of it is matched). Its perceived-group lists and equity block
    are the shipped policy's unless given."""
    client = aioredis.from_url(platform.redis_url)
    now = time.time()
    deployment_id = f"dep-test{int(now * 1e6) % 10**12:012d}"
    key = sealing.new_data_key()
    alert_key, alert_public_key = new_alert_key()
    record = new_deployment_record(
        deployment_id,
        name="test",
        purpose="test",
        authorising_officer="test",
        location="test",
        planned_start=now + start_offset_s,
        planned_end=now + 3600,
        cameras=list(cameras),
        threshold=threshold,
        threshold_floor=threshold,
        threshold_override_reason="",
        model_id=model_id,
        watchlist_size_limit=100,
        created_at=now,
        created_by="test",
        alert_public_key=alert_public_key,
        where="intelligence_led",
        reviewed_at=now if reviewed else 0.0,
        min_margin=min_margin,
        perceived_groups=shipped_policy()["perceived_groups"] if perceived_groups is None else perceived_groups,
        equity=shipped_equity() if equity is None else equity,
        false_alert_budget=false_alert_budget,
    )
    try:
        keys = RedisKeys(platform.redis_prefix)
        await write_new_deployment(client, keys, platform.key_wrap(), record, key, alert_key, 7200)
        if subjects:
            await client.sadd(keys.subjects(deployment_id), *subjects)
    finally:
        await client.aclose()
    return deployment_id, key


async def deployment_key(platform: PlatformSettings, deployment_id: str) -> bytes | None:
    """The deployment's data key as a stage reads it (unwrapped with the key-encryption key); None
    once the deployment is closed."""
    client = aioredis.from_url(platform.redis_url)
    try:
        view = await DeploymentRegistry(client, RedisKeys(platform.redis_prefix), platform.key_wrap()).lookup(
            deployment_id
        )
    finally:
        await client.aclose()
    return view.data_key if view is not None else None


async def alert_public_key(platform: PlatformSettings, deployment_id: str) -> bytes | None:
    """The key that verifies the deployment's alert revisions, as the console reads it."""
    client = aioredis.from_url(platform.redis_url)
    try:
        return await registry.alert_public_key(client, RedisKeys(platform.redis_prefix), deployment_id)
    finally:
        await client.aclose()
