"""embed: faces in, L2-normalised vectors out."""
