#!/usr/bin/env python3
"""A stand-in for the claude CLI that speaks stream-json, for fast integration tests.

It takes the real CLI's arguments (`-p --output-format stream-json ...`, the prompt on
stdin), writes the prompt it received to `received_prompt.bin` in its working directory
(byte for byte), and acts on the first word of the prompt:
  crash      a few lines, then exit 1 without a result
  malformed  lines that are not JSON among valid ones
  stderr     two lines on stderr
  children   starts `sleep` in its group and another in a session of its own (like the
             CLI's tool processes), writes its own pid and theirs to children.pids, waits
  orphans    starts the same two children (one ignoring SIGINT and SIGTERM), writes
             children.pids, replies and exits 0 without waiting for them
  stubborn   ignores SIGINT and SIGTERM, then waits
  slow       one text delta every 0.05 s, for a long time
  lines N S P C  N text deltas (padded with P times C, default x) as fast as possible,
               after S seconds
  clock N I  N text deltas "t=<epoch ms>;" I seconds apart (the console measures render lag)
  html       HTML injection payloads in every kind of output: text, thinking, a tool call
             and its result, stderr, an unparsed line, an unknown event, the result
  leak VAR   writes the sha256 of $VAR to leaked.sha256, then prints the value every way
             a redactor must catch: split over two text deltas at every offset, in one
             delta, base64 (standard, URL-safe, inside a longer text), percent-encoded, on
             stderr, in a tool result, in an unknown event, in its result
anything else: a short reply that quotes the prompt. On SIGINT it prints a result with
subtype error_during_execution and exits 0, as the real CLI does."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

SESSION = str(uuid.uuid4())


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def delta(text):
    emit(
        {
            "type": "stream_event",
            "session_id": SESSION,
            "event": {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        }
    )


def result(text, is_error=False, subtype="success"):
    emit(
        {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": 5,
            "num_turns": 1,
            "result": text,
            "session_id": SESSION,
            "total_cost_usd": 0.0012,
            "usage": {"input_tokens": 11, "output_tokens": 7},
        }
    )


def on_interrupt(signum, frame):
    result("", is_error=True, subtype="error_during_execution")
    sys.exit(0)


def leak(value, session):
    import base64
    import hashlib
    import urllib.parse

    with open("leaked.sha256", "w") as f:
        f.write(hashlib.sha256(value.encode()).hexdigest())
    for cut in range(len(value) + 1):
        delta(f"[{cut}] {value[:cut]}")
        delta(f"{value[cut:]} ")
    delta(f"whole {value}.")
    delta(" b64 " + base64.b64encode(value.encode()).decode())
    delta(" url-safe " + base64.urlsafe_b64encode(value.encode()).decode())
    delta(" inside " + base64.b64encode(f"TOKEN={value}\n".encode()).decode())
    delta(" percent " + urllib.parse.quote(value, safe=""))
    sys.stderr.write(f"stderr says {value}\n")
    sys.stderr.flush()
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": f"env: X={value}"}
    emit({"type": "user", "session_id": session, "message": {"content": [tool_result]}})
    emit({"type": "surprise", "session_id": session, "secret": value})
    result(f"done with {value}")


PAYLOADS = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    '<iframe src="javascript:alert(3)"></iframe><a href="javascript:alert(4)">link</a>'
    "<svg onload=\"fetch('/pwned')\"></svg><style>body{display:none}</style>"
)


def html(session):
    delta(PAYLOADS)
    emit(
        {
            "type": "stream_event",
            "session_id": session,
            "event": {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "thinking_delta", "thinking": PAYLOADS},
            },
        }
    )
    tool_use = {"type": "tool_use", "id": "t1", "name": PAYLOADS, "input": {"command": PAYLOADS}}
    emit({"type": "assistant", "session_id": session, "message": {"content": [tool_use]}})
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": PAYLOADS}
    emit({"type": "user", "session_id": session, "message": {"content": [tool_result]}})
    sys.stderr.write(PAYLOADS + "\n")
    sys.stderr.flush()
    sys.stdout.write(PAYLOADS + "\n")
    emit({"type": PAYLOADS, "session_id": session})
    result(PAYLOADS)


def main():
    argv = sys.argv[1:]
    raw_prompt = sys.stdin.buffer.read()  # the gateway sends the prompt on stdin
    prompt = raw_prompt.decode()
    with open("received_prompt.bin", "wb") as f:
        f.write(raw_prompt)
    with open("received_argv.json", "w") as f:
        json.dump(argv, f)
    signal.signal(signal.SIGINT, on_interrupt)
    session = argv[argv.index("--resume") + 1] if "--resume" in argv else SESSION
    emit(
        {
            "type": "system",
            "subtype": "init",
            "session_id": session,
            "model": "fake",
            "tools": ["Bash"],
        }
    )
    emit(
        {
            "type": "stream_event",
            "session_id": session,
            "event": {"type": "message_start", "message": {"id": "m1", "content": []}},
        }
    )
    word = prompt.split()[0] if prompt.split() else ""
    if word == "crash":
        delta("about to crash")
        sys.exit(1)
    if word == "malformed":
        sys.stdout.write('this is not json\n{"type": "assistant", "message": 5}\n[1,2]\n')
        sys.stdout.flush()
    if word == "stderr":
        sys.stderr.write("warning one\nwarning two\n")
        sys.stderr.flush()
    if word == "children":
        group_child = subprocess.Popen(["sleep", "600"])
        session_child = subprocess.Popen(["sleep", "601"], start_new_session=True)
        with open("children.pids", "w") as f:
            f.write(f"{os.getpid()} {group_child.pid} {session_child.pid}\n")
        delta("children started")
        time.sleep(600)
    if word == "orphans":
        stubborn = "trap '' INT TERM; sleep 600 & wait"
        group_child = subprocess.Popen(["sh", "-c", stubborn])
        session_child = subprocess.Popen(["sleep", "601"], start_new_session=True)
        with open("children.pids", "w") as f:
            f.write(f"{os.getpid()} {group_child.pid} {session_child.pid}\n")
    if word == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        delta("you cannot stop me")
        time.sleep(600)
    if word == "slow":
        for i in range(100_000):
            delta(f"w{i} ")
            time.sleep(0.05)
    if word == "lines":
        words = prompt.split()
        time.sleep(float(words[2]) if len(words) > 2 else 0)
        padding = (words[4] if len(words) > 4 else "x") * int(words[3]) if len(words) > 3 else ""
        for i in range(int(words[1])):
            delta(f"line {i}{padding}\n")
    if word == "clock":
        words = prompt.split()
        for _ in range(int(words[1])):
            delta(f"t={time.time() * 1000:.0f};")
            time.sleep(float(words[2]))
    if word == "html":
        html(session)
        return
    if word == "leak":
        leak(os.environ.get(prompt.split()[1], ""), session)
        return
    reply = f"You said: {prompt}"
    delta(reply)
    emit(
        {
            "type": "assistant",
            "session_id": session,
            "message": {"id": "m1", "content": [{"type": "text", "text": reply}]},
        }
    )
    result(reply)


if __name__ == "__main__":
    main()
