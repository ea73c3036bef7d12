"""Lifecycles built once per pytest session and shared by the modules that read or go on from them."""
