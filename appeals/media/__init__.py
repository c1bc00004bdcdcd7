"""Images and videos of reported items, kept here so no reviewer's browser fetches them elsewhere.

`fetch` gets the bytes from the platform under SSRF rules (framework-free); `previews` makes the
blurred preview; `services` stores both through Django's storage API and records the outcome on
the item's `MediaAsset`. The case page shows only our own copies.
"""
