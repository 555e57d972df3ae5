"""A chat web page on your own machine: `python -m stage7_instruct.serve`, then open http://127.0.0.1:8000.

    python -m stage7_instruct.serve --checkpoint runs/stage7_instruct/dpo-both-cpu --port 8000

Flask serves one page and one endpoint. The page keeps the conversation and sends all of it with each
message (the server keeps nothing between requests); POST /api/chat answers with the reply as a stream
of text, whole characters as they are sampled. Bound to 127.0.0.1 unless --host says otherwise (the
model is yours: do not put it on a network without thinking about who may use it). Limits: a message is
at most --max_chars characters and a conversation at most --max_messages messages; one reply is
written at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from shared.cli import UserError, check, parse_config, run_main
from stage7_instruct.chat import ChatConfig, Conversation, load_conversation
from stage7_instruct.config import STAGE

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llm-stages chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 h1 { font-size: 1.2rem; } #log { display: flex; flex-direction: column; gap: .6rem; margin-bottom: 1rem; }
 .msg { padding: .6rem .8rem; border-radius: .6rem; white-space: pre-wrap; line-height: 1.4; }
 .user { background: #dbeafe; align-self: flex-end; max-width: 80%; }
 .assistant { background: #f3f4f6; align-self: flex-start; max-width: 90%; }
 .error { color: #b91c1c; } form { display: flex; gap: .5rem; }
 textarea { flex: 1; font: inherit; padding: .5rem; border-radius: .4rem; }
 button { font: inherit; padding: .5rem 1rem; }
</style></head><body>
<h1>Chat with your stage 7 model <small id="model"></small></h1>
<div id="log"></div>
<form id="form"><textarea id="text" rows="2" maxlength="__MAX_CHARS__" placeholder="Write a message"></textarea>
<button id="send">Send</button> <button id="clear" type="button">Clear</button></form>
<script>
const log = document.getElementById("log"), text = document.getElementById("text");
let messages = [];
function bubble(role, content) {
  const div = document.createElement("div"); div.className = "msg " + role; div.textContent = content;
  log.appendChild(div); return div;
}
document.getElementById("clear").onclick = () => { messages = []; log.innerHTML = ""; };
text.addEventListener("keydown", e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } });
document.getElementById("form").onsubmit = e => { e.preventDefault(); send(); };
async function send() {
  const content = text.value.trim(); if (!content) return;
  text.value = ""; bubble("user", content); messages.push({role: "user", content});
  const out = bubble("assistant", ""); document.getElementById("send").disabled = true;
  try {
    const r = await fetch("/api/chat", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({messages})});
    if (!r.ok) { out.className = "msg error"; out.textContent = (await r.json()).error; messages.pop(); return; }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    for (;;) { const {value, done} = await reader.read(); if (done) break;
               out.textContent += decoder.decode(value, {stream: true}); }
    messages.push({role: "assistant", content: out.textContent});
  } finally { document.getElementById("send").disabled = false; text.focus(); }
}
</script></body></html>
"""


@dataclass(frozen=True)
class ServeConfig(ChatConfig):
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (127.0.0.1: this machine only)"})
    port: int = field(default=8000, metadata={"help": "port (0: any free one)"})
    max_chars: int = field(default=2000, metadata={"help": "longest message accepted, in characters"})
    max_messages: int = field(default=40, metadata={"help": "most messages in one conversation"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.port <= 65535, "--port must be between 0 and 65535")
        check(self.max_chars >= 1 and self.max_messages >= 1, "--max_chars and --max_messages must be at least 1")


def check_messages(body, cfg: ServeConfig) -> list[tuple[str, str]]:
    """The request's conversation as (role, text) turns, or a UserError saying what is wrong with it."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise UserError('send JSON {"messages": [{"role": "user", "content": "..."}, ...]}')
    if len(messages) > cfg.max_messages:
        raise UserError(f"the conversation has {len(messages)} messages, more than {cfg.max_messages}; clear it.")
    turns = []
    for i, m in enumerate(messages):
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected or not isinstance(content, str):
            raise UserError(f"message {i} must be a {expected} message with text content (the turns alternate, "
                            f"user first).")
        if len(content) > cfg.max_chars:
            raise UserError(f"message {i} is {len(content)} characters, more than {cfg.max_chars}; send a shorter one.")
        turns.append((role, content))
    if turns[-1][0] != "user" or not turns[-1][1].strip():
        raise UserError("the last message must be a non-empty user message.")
    return turns


def create_app(conversation_factory, cfg: ServeConfig):
    from flask import Flask, Response, jsonify, request, stream_with_context

    app = Flask(__name__)
    lock = threading.Lock()  # one model: one reply at a time

    @app.get("/")
    def page():
        return Response(PAGE.replace("__MAX_CHARS__", str(cfg.max_chars)), mimetype="text/html")

    @app.post("/api/chat")
    def chat():
        try:
            turns = check_messages(request.get_json(silent=True), cfg)
            conversation: Conversation = conversation_factory()
            conversation.turns = turns[:-1]
            conversation.prompt_ids(turns[-1][1])  # too long: refused now, with a status, not mid-stream
        except UserError as err:
            return jsonify(error=str(err)), 400

        def stream():
            with lock, torch.no_grad():
                yield from conversation.send(turns[-1][1])

        return Response(stream_with_context(stream()), mimetype="text/plain; charset=utf-8")

    return app


def main(argv: Sequence[str] | None = None) -> None:
    cfg = parse_config(ServeConfig, {}, argv, prog=f"python -m {STAGE}.serve",
                       description="Serve a chat web page for a stage 7 model on this machine.")
    base = load_conversation(cfg)
    from werkzeug.serving import make_server

    def fresh() -> Conversation:
        return Conversation(base.model, base.tokenizer, base.sampling, base.generator)

    try:
        server = make_server(cfg.host, cfg.port, create_app(fresh, cfg), threaded=True)
    except OSError as err:
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port} ({err.strerror}); pass another --port.") from None
    print(f"chat page at http://{cfg.host}:{server.server_port}  (Ctrl-C stops the server)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nserver stopped")


if __name__ == "__main__":
    run_main(main)
