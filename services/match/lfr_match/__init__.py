"""match: vectors in, matches out; owner of the watchlists and the deployment lifecycle."""
