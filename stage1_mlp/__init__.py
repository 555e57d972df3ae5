"""Stage 1: an MLP over bags of word n-grams classifies text (SST-2, TREC, AG News, SMS spam)."""
