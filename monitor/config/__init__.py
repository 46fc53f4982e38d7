"""The config file: TOML in, a validated and frozen `Config` out (sources, rules, channels, …).

- `loader`: reads the file, substitutes `${VAR}`, validates every table and reports every mistake
  at once as `PATH:LINE: where: what`; the only code that reads the environment.
- `tables`: the pydantic model of each table (its keys, types and defaults);
- `lines`: where each table and key is in the raw text, for the line numbers in problems;
- `values`: parsing one value (durations, sizes, names, selectors, cron, quiet hours);
- `overrides`: the `[monitor]` keys the environment may set (`NEWS_MONITOR_LOG_LEVEL`, ...).

Sits beside the other domain packages: it imports `models`, `errors`, `secrets` and the rule
parser (a rule's query is checked when the config loads, so a typo is a config error).
"""

from monitor.config.loader import Config, Settings, default_config_path, load

__all__ = ["Config", "Settings", "default_config_path", "load"]
