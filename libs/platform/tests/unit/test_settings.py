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
