# The kpi-monitor image: the worker (default command), and the simulator/replay/kpis CLI.
#   docker build -t kpi-monitor .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=kafka:9092 -e REDIS_URL=redis://redis:6379/0 -e KPI_WEB_TOKEN=… kpi-monitor
# (the worker binds the container's address, which is not loopback: it needs KPI_WEB_TOKEN)
# docker-compose.yml builds and runs it with the rest of the stack.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first (cached while only the code changes); every one ships manylinux wheels, no compiler.
COPY pyproject.toml README.md ./
RUN mkdir -p stream alerts && touch stream/__init__.py alerts/__init__.py \
    && pip install . && pip uninstall -y kpi-monitor && rm -rf stream alerts
COPY stream ./stream
COPY alerts ./alerts
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kpi \
    && mkdir -p /data && chown kpi /data
COPY deploy/docker/entrypoint.sh /usr/local/bin/kpi-entrypoint
COPY deploy/docker/healthcheck.py /usr/local/lib/kpi-healthcheck.py

USER kpi
# auto: the container's own address (entrypoint.sh); RocksDB tables live under /data.
ENV KPI_WEB_HOST=auto \
    KPI_WEB_PORT=6066 \
    KPI_DATA_DIR=/data
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "/usr/local/lib/kpi-healthcheck.py"]
ENTRYPOINT ["kpi-entrypoint"]
CMD ["kpi-monitor", "worker"]
