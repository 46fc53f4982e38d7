# news-monitor: a small image that runs the daemon as an unprivileged user.
#   docker build -t news-monitor .
#   docker run -d --name news-monitor -v news-data:/data \
#     -v "$PWD/config:/config:ro" -e TELEGRAM_TOKEN=... news-monitor
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
# [fulltext]: trafilatura for article bodies (~52 MB; README "Article pages" says why);
# [postgresql]: psycopg for a `postgresql://` database (README "Running on PostgreSQL")
RUN pip install --no-cache-dir --prefix=/install ".[fulltext,postgresql]"

FROM python:3.11-slim
# tini as PID 1: forwards SIGTERM to the daemon and reaps zombies
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /config && chown monitor /data
COPY --from=build /install /usr/local
COPY config/monitor.toml /config/monitor.toml
# /healthz and /metrics (when the config sets health_port) listen on every interface of the
# container, or no one outside it could reach them; publish the port only to whom may scrape it
ENV NEWS_MONITOR_CONFIG=/config/monitor.toml \
    NEWS_MONITOR_HEALTH_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
# relative paths in the config (database = "data/monitor.db") resolve under /data
WORKDIR /data
VOLUME ["/data"]
USER monitor
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["news-monitor", "sources", "--check"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "news-monitor"]
CMD ["run"]
