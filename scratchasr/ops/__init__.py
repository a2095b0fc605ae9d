"""The equation layer: pure NumPy ``<op>_forward`` / ``<op>_backward`` pairs.

Each module holds a few ops, their NamedTuple caches and tags into ``docs/equations/``.
"""
