from lfr_detect.app import build
from lfr_detect.settings import DetectSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("detect", build, DetectSettings))
