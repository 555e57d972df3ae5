"""Stage 7: a stage 5 GPT turned into an assistant: a chat template, supervised finetuning with the
prompt masked, preference tuning with DPO, and a chat in the terminal and in a web page."""
