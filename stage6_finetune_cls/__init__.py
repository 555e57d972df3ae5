"""Stage 6: a stage 5 GPT finetuned as a classifier (last-token pooling) with frozen layers or LoRA,
against the same model from random weights: what pretraining is worth."""
