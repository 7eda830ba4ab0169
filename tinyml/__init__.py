"""tinyml: data -> models -> prune -> quantize -> compile -> firmware -> device -> sweep."""
__version__ = "0.1.0"
