"""alert: matches in, control-room alerts out (one per subject per camera per window)."""
