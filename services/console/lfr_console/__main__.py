from lfr_console.app import build
from lfr_console.settings import ConsoleSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("console", build, ConsoleSettings))
