"""The equitability and threshold calibration harness (`lfr eval`), NPL-style."""
