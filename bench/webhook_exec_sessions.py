"""What recording an exec session costs the webhook: scrubbing secrets from its command.

Run: .venv/bin/python bench/webhook_exec_sessions.py [--repeat 50]

Every ``kubectl exec``/``attach`` the webhook reviews becomes an ExecSession Event; before it is
queued, the command is scrubbed of secrets (``webhook.sessions.scrub``: ``sh -c`` scripts are
re-read with the shell lexer, bounded to the first 8 KiB). Posting is off the answer's path
(a queue), so this is the whole per-review cost. Prints p50 and max per command shape,
including the hostile ones the bounds exist for.
"""

from __future__ import annotations

import argparse
import statistics
import time

from webhook import sessions

SCRIPT = "; ".join(
    f"export TOKEN_{i}=s3cr3t{i} && curl -u admin:pw{i} -H 'Authorization: Bearer x{i}' "
    f"https://user:pass@host{i}.example/run?i={i}"
    for i in range(60)
)
CASES: dict[str, list[str]] = {
    "kubectl exec -- sh (interactive)": ["sh"],
    "typical sh -c (80 chars)": [
        "sh",
        "-c",
        "cd /app && ./manage.py migrate --noinput; ls -la /tmp",
    ],
    "secrets in a script (8 KiB)": ["sh", "-c", SCRIPT[:8192]],
    "hostile nesting and quotes": ["sh", "-c", "$(" * 3000 + "'\"`" * 1000],
    "200 nested sh -c": ["sh", "-c", "sh -c '" * 200 + "id" + "'" * 200],
    "1,000,000 argv words": ["echo", *("w" for _ in range(1_000_000))],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"Scrubbing one exec command ({args.repeat} runs each)")
    print("| command | p50 | max |")
    print("|---|---|---|")
    for label, argv in CASES.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            sessions.scrub(argv)
            times.append(time.perf_counter() - start)
        print(f"| {label} | {statistics.median(times) * 1e3:.2f} ms | {max(times) * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
