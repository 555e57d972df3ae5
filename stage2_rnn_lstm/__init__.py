"""Stage 2: recurrent language models (RNN, GRU, LSTM cells written from their equations) trained with
truncated backpropagation through time on Tiny Shakespeare characters or WikiText-2 words, then sampled."""
