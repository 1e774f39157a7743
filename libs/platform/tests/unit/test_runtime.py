import asyncio

from lfr_platform.runtime import until_stopped
from lfr_testing.work import forever, takes


async def _stop_while_running(coroutine, started: asyncio.Event, grace_s: float) -> asyncio.Task:
    """Run `coroutine` as a service task; once it has started, set the stop event and wait (at most
    10 s) for the stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(coroutine)
    stopping = asyncio.create_task(until_stopped(stop, task, grace_s=grace_s))
    await started.wait()
    stop.set()
    async with asyncio.timeout(10):
        await stopping
    return task


async def test_a_task_that_swallows_one_cancellation_is_still_stopped():
    """As a task does when a library's asyncio.wait_for finishes in the same loop iteration as the
    cancellation (Python 3.11): the first CancelledError is lost, the loop goes on."""
    swallowed = 0
    started = asyncio.Event()

    async def janitor() -> None:
        nonlocal swallowed
        while True:
            started.set()
            try:
                await forever()
            except asyncio.CancelledError:
                if swallowed == 0:
                    swallowed += 1
                    asyncio.current_task().uncancel()
                    continue
                raise

    task = await _stop_while_running(janitor(), started, grace_s=0.2)
    assert swallowed == 1 and task.cancelled()


async def test_a_crash_of_one_task_stops_the_others_and_is_raised():
    async def crash() -> None:
        raise RuntimeError("boom")

    serving = asyncio.create_task(forever())
    try:
        await until_stopped(asyncio.Event(), asyncio.create_task(crash()), serving)
    except RuntimeError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the crash was not raised")
    assert serving.cancelled()


async def test_a_task_cleaning_up_after_its_cancellation_is_not_interrupted():
    """Stopping a gRPC server and flushing a producer take a while: a second cancellation in the
    middle would leave the server running."""
    cleaned, started = asyncio.Event(), asyncio.Event()

    async def control_plane() -> None:
        try:
            started.set()
            await forever()
        finally:
            await takes(1.5)  # server.stop(grace), producer.stop(): over a second
            cleaned.set()

    await _stop_while_running(control_plane(), started, grace_s=5.0)
    assert cleaned.is_set()


async def test_a_loop_ends_at_its_next_pause_when_a_library_swallowed_its_cancellation():
    from lfr_platform.runtime import pause

    inside = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                inside.set()
                await takes(1.0)  # a library call that swallows a cancellation (gh-86296)
            except asyncio.CancelledError:
                pass
            await pause(0.01)

    task = asyncio.create_task(loop())
    await inside.wait()  # inside the swallowing call
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    assert task in done and task.cancelled()  # a plain wait instead of pause would let it run on
