"""The long-running process: `news-monitor run` and what it needs around the `Monitor`.

- `daemon`: the `Daemon`, APScheduler ticks that start due polls, drain the outbox and keep
  house; signals (SIGTERM stops, SIGHUP reloads) and config-file reloads;
- `healthz`: the loopback HTTP server for `/healthz` and `/metrics`;
- `logs`: structured logging (JSON or human lines), every line masked;
- `process`: the loop's executor, whose stuck threads never hold the process at exit.

May import `service` and everything below it; only `cli` imports runtime. Nothing below
imports it: lower layers log through structlog directly, and what they count lives in
`service.metrics`.
"""
