"""ingest: cameras in, sampled and sealed frames out."""
