"""stage5_gpt: coming soon (see its README)."""
