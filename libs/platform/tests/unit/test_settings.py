from lfr_detect.settings import DetectSettings
from lfr_platform.settings import PlatformSettings, unknown_variables


def test_a_misspelt_variable_is_reported():
    env = {"LFR_KAFKA_BOOTSTRAP_SERVER": "x", "LFR_DETECT_MIN_FACE_PIXELS": "3"}
    assert unknown_variables("detect", [PlatformSettings, DetectSettings], env) == [
        "LFR_DETECT_MIN_FACE_PIXELS",
        "LFR_KAFKA_BOOTSTRAP_SERVER",
    ]


def test_known_and_other_services_variables_pass():
    env = {
        "LFR_KAFKA_BOOTSTRAP_SERVERS": "x",
        "LFR_DETECT_MIN_FACE_PX": "40",
        "LFR_EMBED_MAX_BATCH": "8",  # embed's, in a shared environment
        "LFR_DATA_DIR": "/data",
        "LFR_TEST_REDIS_URL": "redis://",
        "PATH": "/bin",
    }
    assert unknown_variables("detect", [PlatformSettings, DetectSettings], env) == []


def test_every_service_of_the_one_list_may_share_an_environment_with_the_others():
    # The deployments service's variables made every other service refuse to start while it was
    # missing from the list of services.
    env = {"LFR_DEPLOYMENTS_COPY_WAIT_S": "10", "LFR_CONSOLE_REFRESH_S": "1", "LFR_INGEST_VAN_ID": "van-1"}
    for service in ("detect", "embed", "match", "alert"):
        assert unknown_variables(service, [PlatformSettings], env) == [], service


def test_the_shared_blocks_are_known_to_every_service_and_misspelt_ones_to_none():
    env = {
        "LFR_WATCHLIST_QDRANT_URL": "http://qdrant:6333",
        "LFR_MODEL_ID": "sface-2021dec",
        "LFR_WATCHLIST_QDRANT_ULR": "http://qdrant:6333",
    }
    for service in ("detect", "match", "deployments"):
        assert unknown_variables(service, [PlatformSettings], env) == ["LFR_WATCHLIST_QDRANT_ULR"], service


def test_a_shared_block_is_read_once_into_the_platform_settings(monkeypatch):
    monkeypatch.setenv("LFR_WATCHLIST_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("LFR_MODEL_ID", "arcface-r100")
    platform = PlatformSettings()
    assert platform.watchlist.qdrant_url == "http://qdrant:6333" and platform.model.id == "arcface-r100"
