"""The command line, `news-monitor`: thin commands over the service and the runtime.

- `commands`: the click commands (check, once, run, notify-test, test-rule, search,
  stories) and `main`, which maps our errors to exit codes;
- `alerts`: `alerts` (the outbox, `--json`), `alerts retry` and `alerts drop`;
- `feeds`: `sources` (health, `--json`, `import` and `export` of OPML);
- `discovery`: `discover`, a site's feeds found from its page;
- `migrate`: `migrate`, a SQLite database copied into PostgreSQL;
- `blocks`: the ready-to-paste `[[sources]]` blocks `sources import` and `discover` print;
- `context`: the lazily loaded config, clock and store every command gets;
- `report`: the tables and summaries the commands print.

The top layer: may import everything, and nothing imports it. Commands import the heavy parts
(HTTP client, Apprise, scheduler, store) when they run, so `check` and `--help` start quickly.
"""

from monitor.cli.commands import main

__all__ = ["main"]
