"""SavedModel export and the TF-Serving-compatible server (not yet implemented: see the open issues)."""
