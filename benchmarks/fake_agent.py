#!/usr/bin/env python3
"""A fake `claude` for benchmarks: prints stream-json text deltas carrying their send time.

The prompt (on stdin, as the gateway sends it) says what to do: "WAIT COUNT RATE [PAD]" =
sleep WAIT seconds (so subscribers can connect), then COUNT deltas at RATE per second (0 =
as fast as possible), each padded with PAD bytes (default 0), then a result.
Each delta's text is "T<CLOCK_MONOTONIC in ns>"; the benchmark client subtracts it from its
own reading of the same clock."""

import json
import sys
import time

wait, count, rate, *rest = sys.stdin.read().split()
padding = " " + "x" * int(rest[0]) if rest else ""
time.sleep(float(wait))
interval = 1 / float(rate) if float(rate) else 0
out = sys.stdout
start = time.monotonic()
for i in range(int(count)):
    if interval:
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": f"T{time.monotonic_ns()}{padding}"},
    }
    out.write(json.dumps({"type": "stream_event", "event": event}) + "\n")
    out.flush()
out.write(
    json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )
    + "\n"
)
