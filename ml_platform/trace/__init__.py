"""Trace a live signal back to everything that made it, as recorded when it was written.

How it works, and why: docs/architecture.md, "ml_platform/trace/__init__.py".
"""
