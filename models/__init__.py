"""Keras 3 models registered by name (not yet implemented: see the open issues)."""
