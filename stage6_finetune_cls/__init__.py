"""stage6_finetune_cls: coming soon (see its README)."""
