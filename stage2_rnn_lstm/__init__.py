"""stage2_rnn_lstm: coming soon (see its README)."""
