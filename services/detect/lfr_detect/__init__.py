"""detect: frames in, identifiable faces out."""
