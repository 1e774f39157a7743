"""The `lfr` command: the local stack, deployments and watchlists, the demo, the evaluation."""
