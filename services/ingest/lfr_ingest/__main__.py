from lfr_ingest.app import build
from lfr_ingest.settings import IngestSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("ingest", build, IngestSettings))
