"""Stage 5: a GPT (decoder-only Transformer with GPT-2's parameter names) pretrained on text, sampled with
a KV cache, scored by perplexity; DDP under torchrun, GPT-2 weights through Hugging Face's format."""
