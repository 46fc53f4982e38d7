"""news-monitor: watch news sources and alert once per new development."""

__version__ = "0.1.0"
