"""Reproduce a registered model version bit-exactly from its record, and certify it.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/__init__.py".
"""
