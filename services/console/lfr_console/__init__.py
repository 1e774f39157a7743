"""console: the control room's web page: live alerts beside their watchlist images, decided by officers."""
