"""The fast tier: CPU models that score every case at intake (offensive language, language,
nudity on stored images), per-queue priority rules applied when a score lands, and which cases
get the deep (safeguard) check."""
