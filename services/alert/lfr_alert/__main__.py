from lfr_alert.app import build
from lfr_alert.settings import AlertSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("alert", build, AlertSettings))
