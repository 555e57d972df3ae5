"""Stage 4: the encoder-decoder Transformer of "Attention Is All You Need", written out, on the same
translation task as stage 3 so the two compare in one BLEU table."""
