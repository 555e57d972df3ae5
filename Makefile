# Set-up and the two commands a learner needs: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to 2.13.0 (the CPU build) before anything else is
# installed, so no dependency can pull a multi-GB CUDA build instead.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0

.PHONY: help install install-dev demo test quick-test lint results pretrain stage6-table clean clean-runs check \
        notebooks train generate info instruct
.DEFAULT_GOAL := help

# `make train STAGE=5 ARGS="--preset tiny"`: STAGE picks the package, ARGS are its flags.
STAGES := stage1_mlp stage2_rnn_lstm stage3_attention_seq2seq stage4_transformer stage5_gpt stage6_finetune_cls \
          stage7_instruct
STAGE_NUMBER = $(filter 1 2 3 4 5 6 7,$(STAGE))
PKG = $(if $(STAGE_NUMBER),$(word $(STAGE_NUMBER),$(STAGES)))
# What `make generate` runs for each stage, and its default input (stage 1 classifies; see its evaluate).
GENERATE := - stage2_rnn_lstm.generate stage3_attention_seq2seq.translate stage4_transformer.translate \
            stage5_gpt.generate stage6_finetune_cls.classify stage7_instruct.chat
GENERATE_ARGS_2 := --prompt "ROMEO:" --max_new_tokens 200
GENERATE_ARGS_3 := "A man in a red shirt is riding a bike."
GENERATE_ARGS_4 := $(GENERATE_ARGS_3)
GENERATE_ARGS_5 := $(GENERATE_ARGS_2)
GENERATE_ARGS_6 := "WINNER! You have been selected to receive a prize. Call now to claim."
GENERATE_ARGS_7 := --message "Write a short story passage with dialogue."
ARGS ?=
STORYBOOK_GPT := runs/stage5_gpt/gutenberg_children-cpu/best.pt
INSTRUCT_MODELS := pretrained,stage7_instruct/sft-mix-cpu,stage7_instruct/sft-mix-nomask-cpu,stage7_instruct/dpo-both-cpu
NEEDS_STAGE = @case "$(STAGE)" in [1-7]) ;; *) echo "make $@ needs STAGE=1..7, e.g. make $@ STAGE=5 ARGS='--preset tiny'"; exit 2;; esac

help: ## list the targets (this)
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## (.*)/  make \1\t\2/' | expand -t 24

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed  ## create .venv: torch 2.13.0 (CPU) and the package
install-dev: $(VENV)/.installed-dev  ## install, plus the test tools (pytest, ruff, nbclient)

# The quick tour (its runs are replaced each time it runs: --overwrite), ~15 minutes on 2 CPU cores (12 min 43 s measured for stages 1-6, 2 min 27 s for stage 7's quick SFT and chat; plus ~1 minute to install): every stage on a quick run, in order, then the tables
# (SMS spam: stage 1, its baseline and stage 6 on one split; Tiny Shakespeare: stage 2 and stage 5 on
# one validation text; Multi30k: stage 3 and stage 4 given the same minutes on 2 cores, 200 GRU steps
# and 320 Transformer steps, and one line saying which won: counted in steps, so a slower machine
# prints the same numbers, only later).
demo: install  ## the quick tour: every stage on a quick run, then the tables (~15 min on 2 cores)
	$(PY) -m stage1_mlp.train --dataset trec --preset cpu --overwrite
	$(PY) -m stage1_mlp.train --dataset sst2 --preset cpu --overwrite
	$(PY) -m stage1_mlp.train --dataset sms_spam --preset cpu --overwrite
	$(PY) -m stage1_mlp.baseline --dataset sms_spam
	$(PY) -m stage2_rnn_lstm.train --max_steps 300 --eval_interval 100 --run_name tinyshakespeare-lstm-quick --overwrite
	$(PY) -m stage2_rnn_lstm.generate --prompt "ROMEO:" --max_new_tokens 200
	$(PY) -m stage3_attention_seq2seq.train --preset cpu --max_steps 200 --beam_size 3 --run_name multi30k-en-fr-quick --overwrite
	$(PY) -m stage3_attention_seq2seq.translate "A man in a red shirt is riding a bike."
	$(PY) -m stage4_transformer.train --preset cpu --max_steps 320 --lr_schedule inverse_sqrt --warmup_steps 100 --eval_interval 0 --average_last 1 --beam_size 3 --run_name multi30k-en-fr-quick --overwrite
	$(PY) -m stage4_transformer.translate "A man in a red shirt is riding a bike."
	$(PY) bench/course_claims.py --only stage4_vs_stage3 --no_train
	$(PY) -m stage5_gpt.train --preset cpu --overwrite
	$(PY) -m stage5_gpt.generate --prompt "ROMEO:" --max_new_tokens 200
	$(PY) -m stage5_gpt.train --preset cpu --dataset wikitext2 --max_steps 300 --final_eval_tokens 131072 --run_name wikitext2-quick --overwrite
	$(PY) -m stage6_finetune_cls.train --init_from runs/stage5_gpt/wikitext2-quick --trainable all --epochs 3 --run_name quick --overwrite
	$(PY) -m stage6_finetune_cls.classify "WINNER! You have been selected to receive a £900 prize. Call 09061701461 to claim now."
	@if [ -f $(STORYBOOK_GPT) ]; then \
	  $(PY) -m stage7_instruct.train --max_steps 250 --eval_interval 0 --run_name sft-quick --overwrite && \
	  $(PY) -m stage7_instruct.chat --checkpoint runs/stage7_instruct/sft-quick --message "Write a short story passage with dialogue."; \
	else echo "stage 7 (instruction tuning) starts from the storybook GPT: make pretrain (~30 min), then make demo again"; fi
	$(PY) -m shared.report

# Open the notebooks: installs Jupyter (the `notebooks` extra) and starts it in this folder. Run
# `make demo` first: the notebooks read its runs (each says in its first cell what it reads).
notebooks: install  ## install Jupyter and open the notebooks (run make demo first)
	$(PY) -m pip install -q -e ".[notebooks]"
	$(VENV)/bin/jupyter notebook --notebook-dir=.

# Check your own implementation of a stage's parts (stageN_x/yours.py): make check STAGE=4
check: install  ## check your own parts of a stage: make check STAGE=4
	$(PY) -m shared.check $(STAGE)

lint: install-dev  ## ruff
	$(PY) -m ruff check .

quick-test: install-dev  ## a smoke subset of the tests (a few minutes): every stage trains a tiny run
	$(PY) -m pytest -q -x tests/test_cli.py tests/test_train_loop.py \
	  tests/test_stage1.py::test_tiny_preset_trains_above_chance tests/test_stage2.py::test_tiny_preset_trains \
	  tests/test_stage3.py::test_tiny_preset_learns_to_translate_a_little \
	  tests/test_stage4.py::test_tiny_preset_learns_to_translate_a_little \
	  tests/test_stage5.py::test_tiny_preset_trains_and_records_its_numbers \
	  tests/test_stage6.py::test_tiny_preset_beats_chance_and_records_the_run \
	  tests/test_stage7.py::test_sft_lowers_the_response_loss_and_records_what_was_dropped

train: install  ## one stage's training: make train STAGE=5 ARGS="--preset tiny"
	$(NEEDS_STAGE)
	$(PY) -m $(PKG).train $(ARGS)

generate: install  ## sample from (or translate / classify with) a stage's latest run: make generate STAGE=5
	$(NEEDS_STAGE)
	@test "$(STAGE)" != 1 || { echo "stage 1 generates nothing: score its classifier with python -m stage1_mlp.evaluate --model_path runs/stage1_mlp/sst2-cpu/best.pt"; exit 2; }
	$(PY) -m $(if $(STAGE_NUMBER),$(word $(STAGE_NUMBER),$(GENERATE))) $(or $(ARGS),$(GENERATE_ARGS_$(STAGE)))

info: install  ## this machine: versions, device, data sets found, runs recorded
	$(PY) -m shared.info

clean-runs:  ## remove runs/ (every recorded run); the .venv stays
	rm -rf runs

test: install-dev  ## ruff + the whole test suite (what CI runs; ~9 min on 2 cores)
	$(PY) -m ruff check .
	$(PY) -m pytest --durations=15

# The benchmark runs behind every number in the stage READMEs.
# (bench/stage5_gpu.py needs a CUDA GPU and bench/stage5_cpu_vs_nanogpt.py a nanoGPT checkout: see bench/README.md.)
results: install  ## the benchmark runs behind the README numbers (hours on 2 cores)
	$(PY) bench/stage1_targets.py
	$(PY) -m stage2_rnn_lstm.train --model_type lstm --vocab_type char
	$(PY) -m stage2_rnn_lstm.train --vocab_type word
	$(PY) bench/stage2_cells.py
	for seed in 1337 1 2; do $(PY) -m stage5_gpt.train --preset cpu --seed $$seed || exit 1; done
	$(PY) -m stage5_gpt.train --preset cpu --dataset wikitext2
	$(PY) bench/stage5_kv_cache.py
	for seed in 1337 1 2; do $(PY) -m stage3_attention_seq2seq.train --preset cpu --seed $$seed || exit 1; done
	$(PY) -m stage3_attention_seq2seq.train --preset cpu --attention_type none
	$(PY) bench/translation_step_time.py
	for seed in 1337 1 2; do $(PY) -m stage4_transformer.train --preset cpu --seed $$seed || exit 1; done
	$(MAKE) stage6-table
	$(MAKE) instruct
	$(PY) -m shared.report

# Stage 6's default starting point: the stage 5 cpu preset pretrained on the storybooks with its own
# 8k BPE (~30 min on 2 cores with native bf16, plus ~3 min to prepare the corpus once).
pretrain: install  ## pretrain the storybook GPT stage 6 starts from (~30 min on 2 cores)
	$(PY) -m stage5_gpt.train --dataset gutenberg_children --preset cpu

# Stage 7's runs: SFT with the prompt masked and not, DPO from the masked one, then the base model and the
# three side by side on held-out prompts (python -m shared.report --task instruct_eval).
instruct: install  ## stage 7: SFT (prompt masked and not), DPO, the side-by-side evaluation (~41 min on 2 cores)
	test -f $(STORYBOOK_GPT) || $(MAKE) pretrain
	$(PY) -m stage7_instruct.train --overwrite
	$(PY) -m stage7_instruct.train --no-mask_prompt --overwrite
	$(PY) -m stage7_instruct.dpo --overwrite
	$(PY) -m stage7_instruct.evaluate --models $(INSTRUCT_MODELS)

# Stage 6's table, for both tasks: every --trainable choice from the pretrained GPT and from random
# weights, seeds 1 and 2 of the headline rows (last_block and lora, both inits: 3 seeds with the
# first), continued pretraining on the task's own texts first (3 seeds: SST-2 300 steps, about one pass
# over its phrases; SMS spam 50 steps, about three passes), and the scikit-learn baseline.
stage6-table: install  ## every stage 6 run of its README table (~1.5 h on 2 cores)
	test -f $(STORYBOOK_GPT) || $(MAKE) pretrain
	for task in sms_spam sst2; do \
	  for init in pretrained random; do \
	    for t in head last_block last_two_blocks all lora; do \
	      $(PY) -m stage6_finetune_cls.train --task $$task --init_from $$init --trainable $$t --overwrite || exit 1; done; \
	    for t in last_block lora; do for seed in 1 2; do \
	      $(PY) -m stage6_finetune_cls.train --task $$task --init_from $$init --trainable $$t --seed $$seed --overwrite || exit 1; done; done; \
	  done; \
	  for seed in 1337 1 2; do \
	    $(PY) -m stage6_finetune_cls.train --task $$task --adapt_steps $$(test $$task = sst2 && echo 300 || echo 50) \
	      --trainable last_block --seed $$seed --overwrite || exit 1; done; \
	  $(PY) -m stage6_finetune_cls.baseline --task $$task || exit 1; \
	done

clean:  ## remove .venv, runs/ and the caches
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
