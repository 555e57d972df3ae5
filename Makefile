# Set-up and the two commands a learner needs: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to 2.13.0 (the CPU build) before anything else is
# installed, so no dependency can pull a multi-GB CUDA build instead.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0

.PHONY: install install-dev demo test lint results pretrain stage6-table clean check

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The quick tour (its runs are replaced each time it runs: --overwrite), ~14 minutes on 2 CPU cores (plus ~1 minute to install): every stage on a quick run, in order, then the tables
# (SMS spam: stage 1, its baseline and stage 6 on one split; Tiny Shakespeare: stage 2 and stage 5 on
# one validation text; Multi30k: stage 3 and stage 4 given the same 200 steps, about 2 minutes each:
# counted in steps, so a slower machine prints the same numbers, only later).
demo: install
	$(PY) -m stage1_mlp.train --dataset trec --preset cpu --overwrite
	$(PY) -m stage1_mlp.train --dataset sst2 --preset cpu --overwrite
	$(PY) -m stage1_mlp.train --dataset sms_spam --preset cpu --overwrite
	$(PY) -m stage1_mlp.baseline --dataset sms_spam
	$(PY) -m stage2_rnn_lstm.train --max_steps 300 --eval_interval 100 --run_name tinyshakespeare-lstm-quick --overwrite
	$(PY) -m stage2_rnn_lstm.generate --prompt "ROMEO:" --max_new_tokens 200
	$(PY) -m stage3_attention_seq2seq.train --preset cpu --max_steps 200 --beam_size 3 --run_name multi30k-en-fr-quick --overwrite
	$(PY) -m stage3_attention_seq2seq.translate "A man in a red shirt is riding a bike."
	$(PY) -m stage4_transformer.train --preset cpu --max_minutes 0 --max_steps 200 --warmup_steps 100 --beam_size 3 --run_name multi30k-en-fr-quick --overwrite
	$(PY) -m stage4_transformer.translate "A man in a red shirt is riding a bike."
	$(PY) -m stage5_gpt.train --preset cpu --overwrite
	$(PY) -m stage5_gpt.generate --prompt "ROMEO:" --max_new_tokens 200
	$(PY) -m stage5_gpt.train --preset cpu --dataset wikitext2 --max_steps 300 --run_name wikitext2-quick --overwrite
	$(PY) -m stage6_finetune_cls.train --init_from runs/stage5_gpt/wikitext2-quick --trainable all --epochs 3 --run_name quick --overwrite
	$(PY) -m stage6_finetune_cls.classify "WINNER! You have been selected to receive a £900 prize. Call 09061701461 to claim now."
	$(PY) -m shared.report

# Check your own implementation of a stage's parts (stageN_x/yours.py): make check STAGE=4
check: install
	$(PY) -m shared.check $(STAGE)

lint: install-dev
	$(PY) -m ruff check .

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m pytest --durations=15

# The benchmark runs behind every number in the stage READMEs.
# (bench/stage5_gpu.py needs a CUDA GPU and bench/stage5_cpu_vs_nanogpt.py a nanoGPT checkout: see bench/README.md.)
results: install
	$(PY) bench/stage1_targets.py
	$(PY) -m stage2_rnn_lstm.train --model_type lstm --vocab_type char
	$(PY) -m stage2_rnn_lstm.train --vocab_type word
	$(PY) bench/stage2_cells.py
	for seed in 1337 1 2; do $(PY) -m stage5_gpt.train --preset cpu --seed $$seed || exit 1; done
	$(PY) -m stage5_gpt.train --preset cpu --dataset wikitext2
	$(PY) bench/stage5_kv_cache.py
	$(PY) -m stage3_attention_seq2seq.train --preset cpu
	$(PY) -m stage3_attention_seq2seq.train --preset cpu --attention_type none
	$(PY) -m stage4_transformer.train --preset cpu
	$(MAKE) stage6-table
	$(PY) -m shared.report

# Stage 6's default starting point: the stage 5 cpu preset pretrained on the storybooks with its own
# 8k BPE (~30 min on 2 cores, plus ~3 min to prepare the corpus once).
pretrain: install
	$(PY) -m stage5_gpt.train --dataset gutenberg_children --preset cpu

# Stage 6's table, for both tasks: every --trainable choice from the pretrained GPT and from random
# weights, seeds 1 and 2 of the headline rows (last_block and lora, both inits: 3 seeds with the
# first), and the scikit-learn baseline.
stage6-table: install
	test -f runs/stage5_gpt/gutenberg_children-cpu/best.pt || $(MAKE) pretrain
	for task in sms_spam sst2; do \
	  for init in pretrained random; do \
	    for t in head last_block last_two_blocks all lora; do \
	      $(PY) -m stage6_finetune_cls.train --task $$task --init_from $$init --trainable $$t --overwrite || exit 1; done; \
	    for t in last_block lora; do for seed in 1 2; do \
	      $(PY) -m stage6_finetune_cls.train --task $$task --init_from $$init --trainable $$t --seed $$seed --overwrite || exit 1; done; done; \
	  done; \
	  $(PY) -m stage6_finetune_cls.baseline --task $$task || exit 1; \
	done

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
