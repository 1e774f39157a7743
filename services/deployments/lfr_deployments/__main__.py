from lfr_deployments.app import build
from lfr_deployments.settings import DeploymentsSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("deployments", build, DeploymentsSettings))
