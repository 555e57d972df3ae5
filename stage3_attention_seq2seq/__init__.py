"""Stage 3: a GRU encoder-decoder with Bahdanau (or Luong, or no) attention translates Multi30k
sentences; greedy and beam-search decoding, scored with sacreBLEU."""
