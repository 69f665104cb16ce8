"""changeline: a model-driven production line for upgrading and changing 5GC/IMS network elements."""

__version__ = "0.1.0"
