"""LatentForensics core: align, invert, reconstruct, classify, explain."""
