"""stage3_attention_seq2seq: coming soon (see its README)."""
