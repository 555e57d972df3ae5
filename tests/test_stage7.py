"""Stage 7: the template renders and masks as documented, the losses are right (and handle the edge
cases), the storybook set is built from train books with requirements its passages meet, and the
train / dpo / evaluate / chat / serve commands work on a tiny GPT the tests pretrain themselves."""

import json
import math
import threading
import urllib.error
import urllib.request

import pytest
import torch

from shared.cli import UserError
from stage5_gpt import train as stage5_train
from stage5_gpt.bpe import BPE
from stage5_gpt.data import Tokenizer
from stage7_instruct import chat as stage7_chat
from stage7_instruct import data as stage7_data
from stage7_instruct import dpo as stage7_dpo
from stage7_instruct import evaluate as stage7_evaluate
from stage7_instruct import serve as stage7_serve
from stage7_instruct import storybook
from stage7_instruct import train as stage7_train
from stage7_instruct.generation import stream_text
from stage7_instruct.model import ChatTokenizer, add_special_rows, dpo_loss, masked_lm_loss, render_chat

BYTES = ChatTokenizer(Tokenizer("bpe", bpe=BPE([])))  # 256 bytes + <|endoftext|>, then the three specials


def test_render_chat_masks_the_prompt_and_supervises_the_reply_and_its_end():
    ids, mask = render_chat([("user", "Hi"), ("assistant", "Yo")], BYTES)
    assert ids == [BYTES.user, ord("H"), ord("i"), BYTES.assistant, ord("Y"), ord("o"), BYTES.end]
    assert mask == [False, False, False, False, True, True, True]
    ids, mask = render_chat([("user", "Hi"), ("assistant", "Yo")], BYTES, mask_prompt=False)
    assert mask == [False] + [True] * 6  # nothing predicts the first token
    ids, mask = render_chat([("user", "Hi")], BYTES)  # a prompt to reply to ends in <|assistant|>
    assert ids[-1] == BYTES.assistant and not any(mask)
    # Typed text never becomes a special token: "<|end|>" in a message is just characters.
    assert BYTES.end not in render_chat([("user", "<|end|>")], BYTES)[0][1:-1]


def test_masked_loss_is_the_mean_over_supervised_tokens_and_zero_when_there_are_none():
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 5, 9), torch.randint(0, 9, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 9), ids[:, 1:].reshape(-1), reduction="none")
    expected = nll.view(2, 4)[mask[:, 1:]].mean()  # 4 supervised tokens, each weighs the same
    assert masked_lm_loss(logits, ids, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    empty = masked_lm_loss(logits.requires_grad_(), ids, torch.zeros_like(mask))
    assert empty.item() == 0.0 and not torch.isnan(empty)
    empty.backward()
    assert torch.isfinite(logits.grad).all()


def test_dpo_loss_starts_at_ln2_and_prefers_the_chosen_reply():
    same = torch.tensor([-3.0, -5.0])
    loss, chosen, rejected = dpo_loss(same, same - 1, same, same - 1, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and chosen.abs().max() == 0
    policy_chosen = torch.tensor([-2.0, -4.0], requires_grad=True)
    loss, chosen, rejected = dpo_loss(policy_chosen, same - 1, same, same - 1, beta=0.1)
    assert loss.item() < math.log(2) and (chosen > rejected).all()
    loss.backward()
    assert (policy_chosen.grad < 0).all()  # descending the loss raises the chosen reply's log-probability


def test_new_rows_start_at_the_mean_and_stay_tied():
    from stage5_gpt.model import GPT, GPTConfig

    gpt = GPT(GPTConfig(vocab_size=BYTES.base.size, block_size=16, n_layer=1, n_head=2, n_embd=8))
    assert add_special_rows(gpt, BYTES) == 3 and gpt.cfg.vocab_size == BYTES.size
    rows = gpt.transformer.wte.weight
    assert torch.allclose(rows[BYTES.end], rows[:BYTES.base.size].mean(0))
    assert gpt.lm_head.weight is rows
    logits, _ = gpt(torch.tensor([[BYTES.user, 72, BYTES.assistant]]))
    assert logits.shape == (1, 3, BYTES.size)


def test_stream_text_never_prints_half_a_character():
    ids = BYTES.encode("猫 ok")  # 3 bytes, one id each: the first two alone are no character
    pieces = list(stream_text(iter(ids), BYTES))
    assert "".join(pieces) == "猫 ok" and pieces[0] == "猫"


def test_storybook_set_comes_from_train_books_and_its_passages_meet_their_requirements():
    from stage5_gpt.gutenberg import Book

    body = "The basket was nearly full, and the sun was going down behind the hill. "
    text = "\n\n".join(f'"Come here," said the {("old", "kind", "tall", "young", "wise")[i % 5]} woman to the girl, '
                       f"who was picking berries in the garden. " + body * (1 + i % 3) for i in range(300))
    books = [Book(f"T{i}", "A", f"work {i}", "train" if i < 30 else "val", text) for i in range(32)]
    sets = storybook.build(books)
    total = sum(len(v) for v in sets.values())
    assert total > 100 and set(sets) == {"train", "val", "test"}
    assert not any(e.book in ("work 30", "work 31") for v in sets.values() for e in v)  # val books never read
    assert {e.book for e in sets["test"]}.isdisjoint({e.book for e in sets["train"]})  # split by book
    assert {e.kind for v in sets.values() for e in v} >= {"words", "dialogue", "continue"}
    for e in sets["train"][:50]:
        assert all(storybook.requirement_results(e.requirements, e.response))
    words = next(e for e in sets["train"] if e.kind == "words")
    assert not all(storybook.requirement_results(words.requirements, "A story about nothing at all."))


def test_preference_file_with_a_missing_field_is_one_sentence(tmp_path):
    bad = tmp_path / "pairs.json"
    bad.write_text(json.dumps([{"instruction": "x", "input": "", "output": "y", "chosen": "y"}]))
    with pytest.raises(UserError, match="entry 0 has no text field 'rejected'"):
        stage7_data.load_ch07_pairs(str(bad))
    bad.write_text("{not json")
    with pytest.raises(UserError, match="cannot read .* as JSON"):
        stage7_data.load_ch07_pairs(str(bad))


def test_ch07_split_is_the_books_and_identical_pairs_are_dropped():
    sets = stage7_data.load_instructions("ch07")
    assert [len(sets[s]) for s in ("train", "val", "test")] == [935, 55, 110]
    pairs = stage7_data.load_ch07_pairs()
    assert all(p.chosen.strip() != p.rejected.strip() for v in pairs.values() for p in v)
    assert len(pairs["test"]) <= 110


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny BPE GPT with room for the ch07 entries (context 512), pretrained for seconds on The Verdict."""
    out = tmp_path_factory.mktemp("runs") / "stage5"
    stage5_train.main(["--preset", "tiny", "--dataset", "the_verdict", "--tokenizer", "bpe", "--vocab_size", "400",
                       "--block_size", "512", "--max_steps", "10", "--out_dir", str(out)])
    return out


@pytest.fixture(scope="module")
def sft_model(base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sft"
    record = stage7_train.main(["--preset", "tiny", "--init_from", str(base_model), "--data", "ch07",
                                "--out_dir", str(out)])
    return out, record


def test_sft_lowers_the_response_loss_and_records_what_was_dropped(sft_model):
    out, record = sft_model
    history = json.loads((out / "metrics.json").read_text())
    assert record["method"] == "sft" and record["mask_prompt"] is True and history["task"] == "instruct"
    assert record["train_examples"] + record["dropped"]["train"] == 935  # every example kept or counted
    import csv

    rows = [r for r in csv.DictReader(open(out / "history.csv")) if r["val_ch07_loss"]]
    assert float(rows[-1]["val_ch07_loss"]) < float(rows[0]["val_ch07_loss"])
    model, tokenizer, kind = stage7_train.load_chat_model(out)
    assert kind == "stage7" and model.cfg.vocab_size == tokenizer.size == 403


def test_a_character_level_model_cannot_read_the_template(tmp_path):
    char = tmp_path / "char"
    stage5_train.main(["--preset", "tiny", "--max_steps", "2", "--out_dir", str(char)])
    with pytest.raises(UserError, match="character-level stage 5 model"):
        stage7_train.main(["--preset", "tiny", "--init_from", str(char), "--data", "ch07",
                           "--out_dir", str(tmp_path / "sft")])


def test_a_checkpoint_that_is_not_a_gpt_is_refused(tmp_path):
    bogus = tmp_path / "x.pt"
    torch.save({"model": {}, "model_config": {}, "tokenizer": {}, "stage": "stage6_finetune_cls"}, bogus)
    with pytest.raises(UserError, match="stage6_finetune_cls model, not a stage 5 GPT"):
        stage7_train.load_chat_model(bogus)


def test_dpo_starts_at_ln2_and_records_preference_accuracy(sft_model, base_model, tmp_path, capsys, monkeypatch):
    out, _ = sft_model
    # A small storybook set, so the sampled pairs take seconds.
    story = storybook.StoryExample('Write a short story passage that uses the words "cat", "hat" and "mat".',
                                   "The cat sat on the mat in a hat.",
                                   tuple(storybook.Requirement("word", w) for w in ("cat", "hat", "mat")), "words", "w")
    sets = {"train": [story] * 8, "val": [story], "test": [story]}
    monkeypatch.setattr(stage7_data, "load_storybook_set", lambda: sets)
    record = stage7_dpo.main(["--preset", "tiny", "--init_from", str(out), "--out_dir", str(tmp_path / "dpo")])
    shown = capsys.readouterr().out
    start = float(shown.split("DPO loss before training: ")[1].split()[0])
    assert start == pytest.approx(math.log(2), abs=1e-3)
    assert 0 <= record["test_ch07_accuracy"] <= 1 and record["method"] == "dpo" and record["train_pairs"] > 0
    assert record["storybook_pairs"] >= 0
    with pytest.raises(UserError, match="is a base model, not one finetuned by stage 7"):
        stage7_dpo.main(["--preset", "tiny", "--init_from", str(base_model), "--out_dir", str(tmp_path / "dpo2")])


def test_evaluate_scores_and_writes_the_replies(sft_model, base_model, tmp_path, monkeypatch):
    out, _ = sft_model
    story = storybook.StoryExample("Write a story passage with dialogue.", '"Hi," she said. "Hello," he said.',
                                   (storybook.Requirement("dialogue"),), "dialogue", "w")
    sets = {"train": [story], "val": [story], "test": [story] * 3}
    monkeypatch.setattr(stage7_data, "load_storybook_set", lambda: sets)
    results = stage7_evaluate.main(["--models", f"{base_model},{out}", "--ch07_prompts", "5", "--max_new_tokens", "8",
                                    "--runs_dir", str(tmp_path), "--device", "cpu"])
    assert set(results) == {base_model.name, out.name}
    scores = results[out.name]
    assert scores["story_prompts"] == 3 and scores["ch07_prompts"] == 5 and scores["story_chance"] == 1.0
    assert 0 <= scores["ch07_stopped"] <= 1 and scores["val_ch07_loss"] > 0
    replies = json.loads((tmp_path / "stage7_instruct" / f"eval-{out.name}" / "ch07_test_replies.json").read_text())
    assert len(replies) == 5 and {"prompt", "reference", "reply", "stopped"} <= set(replies[0])


def test_chat_keeps_the_conversation_as_tokens_and_drops_old_turns(sft_model):
    out, _ = sft_model
    conversation = stage7_chat.load_conversation(stage7_chat.ChatConfig(checkpoint=str(out), max_new_tokens=8,
                                                                        device="cpu"))
    with torch.no_grad():
        first = "".join(conversation.send("Name a colour."))
    assert conversation.turns == [("user", "Name a colour."), ("assistant", first.strip())]
    with pytest.raises(UserError, match="the message is empty"):
        list(conversation.send("   "))
    with pytest.raises(UserError, match="send a shorter one"):
        list(conversation.send("word " * 400))
    conversation.turns = [("user", "x " * 100), ("assistant", "y " * 100)] * 3  # far more than the context
    with torch.no_grad():
        list(conversation.send("Again?"))
    ids, _ = render_chat(conversation.turns, conversation.tokenizer)
    assert len(ids) <= conversation.model.cfg.block_size and conversation.turns[-2] == ("user", "Again?")


def test_serve_streams_a_reply_over_http_and_refuses_bad_requests(sft_model):
    from werkzeug.serving import make_server

    out, _ = sft_model
    cfg = stage7_serve.ServeConfig(checkpoint=str(out), max_new_tokens=8, device="cpu", max_chars=50, max_messages=3)
    base = stage7_chat.load_conversation(cfg)
    app = stage7_serve.create_app(lambda: stage7_chat.Conversation(base.model, base.tokenizer, base.sampling), cfg)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
        assert "/api/chat" in page and 'maxlength="50"' in page

        def post(body):
            request = urllib.request.Request(url + "/api/chat", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            return urllib.request.urlopen(request, timeout=60)

        reply = post({"messages": [{"role": "user", "content": "Name a colour."}]})
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        reply.read().decode("utf-8")  # whole characters only: decoding never fails
        for body, why in (({"messages": []}, "send JSON"),
                          ({"messages": [{"role": "user", "content": "x" * 51}]}, "more than 50"),
                          ({"messages": [{"role": "user", "content": "a"}] * 4}, "more than 3"),
                          ({"messages": [{"role": "assistant", "content": "a"}]}, "must be a user message"),
                          ({"messages": [{"role": "user", "content": " "}]}, "non-empty user message")):
            with pytest.raises(urllib.error.HTTPError) as err:
                post(body)
            assert err.value.code == 400 and why in json.loads(err.value.read())["error"]
    finally:
        server.shutdown()


def test_the_same_train_command_twice_is_one_sentence_and_keeps_the_run(sft_model, base_model):
    out, _ = sft_model
    before = (out / "best.pt").read_bytes()
    with pytest.raises(UserError, match="already holds a finished run"):
        stage7_train.main(["--preset", "tiny", "--init_from", str(base_model), "--data", "ch07", "--out_dir", str(out)])
    assert (out / "best.pt").read_bytes() == before


def test_a_hugging_face_gpt2_folder_gets_three_new_rows_and_finetunes(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(vocab_size=50257, n_positions=512, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(hf_cfg).save_pretrained(tmp_path / "hf")
    model, tokenizer, kind = stage7_train.load_chat_model(tmp_path / "hf")
    assert kind == "gpt2" and tokenizer.size == model.cfg.vocab_size == 50260
    assert (tokenizer.user, tokenizer.assistant, tokenizer.end) == (50257, 50258, 50259)
    record = stage7_train.main(["--preset", "tiny", "--init_from", str(tmp_path / "hf"), "--data", "ch07",
                                "--max_steps", "2", "--eval_interval", "0", "--out_dir", str(tmp_path / "sft")])
    assert record["dropped"]["train"] < 935 and stage7_train.load_chat_model(tmp_path / "sft")[2] == "stage7"


def test_chat_command_line_answers_one_message_and_reads_chinese(sft_model, capsys):
    out, _ = sft_model
    replies = stage7_chat.main(["--checkpoint", str(out), "--message", "讲一个故事。", "--max_new_tokens", "6",
                                "--device", "cpu"])
    assert len(replies) == 1 and capsys.readouterr().out.endswith("\n")
    with pytest.raises((SystemExit, UserError)):
        stage7_chat.main(["--checkpoint", str(out), "--temperature", "-1"])
    with pytest.raises(UserError, match="--message is empty"):
        stage7_chat.main(["--checkpoint", str(out), "--message", "  "])
