"""pytest plugin (registered as `lfr`): real components for integration and end-to-end tests.

- `kafka_bootstrap`: a real Kafka-protocol broker. LFR_TEST_KAFKA_BOOTSTRAP_SERVERS if set, else a
  tansu the session starts. `redis_url`: LFR_TEST_REDIS_URL if set, else a redis-server the session
  starts. A missing component FAILS the test: nothing here skips.
- `namespace`: a unique name per test, used as topic prefix and Redis key prefix.
- `platform`: PlatformSettings wired to the above, with the short group timeouts tansu needs.
- `data_dir`, `models_dir`: the shared face data (LFR_DATA_DIR) and the fetched models.
- `eventually(check, timeout_s=...)`: poll until `check` passes; the last failure is re-raised.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from lfr_platform.settings import PlatformSettings, ToolSettings


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def _given_or_started(variable: str, starter_name: str, what: str):
    """The component named by `variable`, else one started for the session; a failure fails the test."""
    given = os.environ.get(variable)
    if given:
        yield given
        return
    from lfr_stack import infrastructure
    from lfr_stack.processes import StackError, stop_process

    log_dir = Path(tempfile.mkdtemp(prefix=f"lfr-test-{starter_name}-"))
    try:
        process, address = getattr(infrastructure, f"start_{starter_name}")(log_dir)
    except StackError as exc:
        pytest.fail(f"no {what} for the tests: {exc}")
    yield address
    stop_process(process.pid)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    yield from _given_or_started("LFR_TEST_KAFKA_BOOTSTRAP_SERVERS", "broker", "Kafka-protocol broker")


@pytest.fixture(scope="session")
def redis_url():
    yield from _given_or_started("LFR_TEST_REDIS_URL", "redis", "Redis")


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def key_encryption_key_file(tmp_path_factory) -> Path:
    """The key-encryption key of the tests' services (32 random bytes, as in production)."""
    path = tmp_path_factory.mktemp("kek") / "kek"
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return path


@pytest.fixture
def platform(
    kafka_bootstrap: str, redis_url: str, namespace: str, models_dir: Path, key_encryption_key_file: Path
) -> PlatformSettings:
    from lfr_testing.deployments import TEST_GRANTS

    return PlatformSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        topic_prefix=f"{namespace}.",
        topic_partitions=1,
        redis_url=redis_url,
        redis_prefix=namespace,
        models_dir=str(models_dir),
        auth_tokens=json.dumps(TEST_GRANTS),
        key_encryption_key_file=key_encryption_key_file,
    )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = ToolSettings().data_dir
    path = path if path.is_absolute() else _repo_root() / path  # the default, from where make runs
    if not (path / "lfw" / "labels.csv").is_file():
        pytest.fail(f"face data not found at {path}: set LFR_DATA_DIR (see docs/data.md)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = Path(PlatformSettings().models_dir)
    path = path if path.is_absolute() else _repo_root() / path  # the default, from where make runs
    if not (path / "yunet-2023mar.onnx").is_file() or not (path / "sface-2021dec.onnx").is_file():
        pytest.fail(f"models not found in {path}: run `make models`")
    return path


class Eventually:
    async def __call__(
        self,
        check: Callable[[], Awaitable[object] | object],
        timeout_s: float = 30.0,
        interval_s: float = 0.1,
    ):
        """Await `check()` until it returns without raising (and not False); return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result is not False:
                    return result
                error: BaseException = AssertionError(f"{check} stayed False")
            except AssertionError as exc:
                error = exc
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout_s}s: {error}") from error
            await asyncio.sleep(interval_s)


@pytest.fixture
def eventually() -> Eventually:
    return Eventually()
