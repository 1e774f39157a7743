from lfr_match.app import build
from lfr_match.settings import MatchSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("match", build, MatchSettings))
