"""Near-duplicate groups: fingerprints of texts and stored images, and grouping at intake."""
