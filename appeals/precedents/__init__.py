"""Precedents: an embedding of each item's text (CPU queue) and the decided cases most similar to
a case, found through a nearest-neighbour index that is rebuilt from the database on demand, kept
up to date incrementally, and never trusted on its own: every hit is re-checked in the database."""
