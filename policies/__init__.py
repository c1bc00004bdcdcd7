"""Policies, their immutable versions, and the framework-free safeguard engine.

This app imports nothing from `appeals` or `reviewer`.
"""
