"""stage4_transformer: coming soon (see its README)."""
