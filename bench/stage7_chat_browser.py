"""Stage 7's chat page in a real headless browser: type a message, wait for the streamed reply, screenshot.

    sudo apt-get install chromium            # Debian's Chromium (or pass --browser another Chromium)
    pip install playwright                   # the Python driver only: it drives the Chromium above
    python bench/stage7_chat_browser.py --checkpoint runs/stage7_instruct/dpo-both-cpu

Starts `python -m stage7_instruct.serve` on a free port as a learner would, opens the page, sends a
message, checks that the reply arrived in pieces (streamed, not at once) and that an over-long message
is refused on the page, and writes bench/results/stage7_chat_page.png and a line per check to
bench/results/stage7_chat_browser.txt.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the chat server did not answer at {url} within {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/stage7_instruct/dpo-both-cpu")
    parser.add_argument("--browser", default="/usr/bin/chromium")
    parser.add_argument("--message", default="Write a short story passage with dialogue.")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("this check needs playwright: pip install playwright (it drives Debian's chromium)") from None
    if not Path(args.browser).exists():
        raise SystemExit(f"no browser at {args.browser}: sudo apt-get install chromium, or pass --browser")

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "stage7_instruct.serve", "--checkpoint", args.checkpoint,
                               "--port", str(port), "--max_chars", "400", "--seed", "1"])
    lines = []
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.browser, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(url)
            page.fill("#text", args.message)
            page.press("#text", "Enter")
            reply = page.locator(".msg.assistant").last
            lengths = []
            deadline = time.time() + 120
            while time.time() < deadline:  # the reply's length as it grows: streamed means several sizes
                lengths.append(len(reply.inner_text()))
                if page.locator("#send").is_enabled() and lengths[-1] > 0:
                    break
                time.sleep(0.05)
            text = reply.inner_text()
            sizes = sorted(set(lengths))
            lines.append(f"reply of {len(text)} characters arrived in {len(sizes)} sizes as it streamed "
                         f"({'streamed' if len(sizes) > 2 else 'NOT streamed'})")
            lines.append(f"reply: {text[:300]!r}")
            page.screenshot(path=str(RESULTS / "stage7_chat_page.png"))
            page.evaluate("document.getElementById('text').removeAttribute('maxlength')")
            page.fill("#text", "x" * 401)
            page.press("#text", "Enter")
            page.wait_for_selector(".msg.error", timeout=30_000)
            refusal = page.locator(".msg.error").last.inner_text()
            lines.append(f"a 401-character message is refused on the page: {refusal!r}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    (RESULTS / "stage7_chat_browser.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
