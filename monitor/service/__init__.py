"""The service: one poll of a source from fetch to store, the `Monitor` that runs polls and
deliveries for a config, when a source is polled next, and whether a source is healthy.

Reading order for a newcomer: `monitor.models` (the data), then `service/pipeline.py` (a poll's
steps in order), then the package of the step you care about (ingest, rules, stories, alerts,
delivery, store).

- `pipeline`: orchestration of one poll (skip unchanged, analyse, enrich, candidates, save);
- `monitor`: the `Monitor`, which owns the store, the fetcher, the rules, the alert planner,
  the metrics and the database lock, for `once` (cli) and the daemon (runtime);
- `factories`: the Fetcher and RuleSet a config shapes, built one way for Monitor and CLI;
- `schedule`: pure arithmetic of the next poll (intervals, backoff, Retry-After);
- `source_health`: which sources are down, and the alerts that say so;
- `metrics`: the Prometheus counters the Monitor keeps (served by runtime/healthz.py);
- `tally`: the polls since the daemon's last "poll cycle" log line, summed;
- `lock`: the database lock file that tells a process it is alone with its leases.

May import every package below it (config, ingest, rules, stories, alerts, delivery, store) and
the bottom modules (models, errors, text, secrets, clock); never runtime or cli, which drive it.
Time comes from a `Clock` passed in, never from a module-level function.
"""
