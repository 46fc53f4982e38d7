"""A long fuzz run of parse -> normalize -> match -> render (the properties of tests/test_fuzz.py).

Usage: python bench/fuzz_long.py [SECONDS]   (default 300)

Runs batches of generated feeds, damaged feeds and random bytes until the time is up, each batch
with a fresh random seed, and prints how many examples went through each stage. Any exception
other than ParseError, or an alert that is not inert, stops the run with Hypothesis's minimal
failing example.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.test_fuzz import TALLY, check, damaged_feeds, raw_bytes, rss_feeds  # noqa: E402

BATCH = settings(
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _run(strategy) -> None:  # type: ignore[no-untyped-def]
    @BATCH
    @given(strategy)
    def prop(case: tuple[bytes, str | None]) -> None:
        check(*case)

    prop()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    started = time.monotonic()
    batches = 0
    while time.monotonic() - started < seconds:
        for strategy in (rss_feeds(), damaged_feeds(), raw_bytes):
            _run(strategy)
            batches += 1
        elapsed = time.monotonic() - started
        print(f"{elapsed:7.0f} s  {TALLY}", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"done: {TALLY.examples} examples in {elapsed:.0f} s ({TALLY.examples / elapsed:.0f}/s), "
        f"{batches} batches; {TALLY.parse_errors} ParseError, {TALLY.entries} entries, "
        f"{TALLY.articles} articles, {TALLY.alerts} alerts rendered and checked inert"
    )


if __name__ == "__main__":
    main()
