# The gateway as a container: `docker compose up` runs it next to PostgreSQL 16
# (docker-compose.yml). `gateway serve` applies pending migrations on start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install from a throwaway source folder: the installed wheel carries the
# migrations and the seed itself, so nothing of the checkout is needed at run time.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY migrations/ migrations/
COPY providers/ providers/
COPY gateway/ gateway/
RUN pip install . \
    && rm -rf /src

# A non-root user; PostgreSQL (the embedded one, used when DATABASE_URL is unset)
# refuses to run as root anyway. /data holds generated webhook secrets, and the
# embedded database when there is one; a new named volume takes its ownership.
RUN useradd --create-home --uid 10001 --user-group gateway \
    && mkdir -p /data \
    && chown gateway:gateway /data
USER gateway
WORKDIR /home/gateway
ENV GATEWAY_DATA_DIR=/data

EXPOSE 8000
# Healthy means able to take webhooks: /readyz (database reachable, writes
# succeeding), not /healthz (process alive), so that a gateway whose database is
# gone or full shows unhealthy while it answers 503. `serve` restarts an embedded
# PostgreSQL itself; urlopen raises on 503, which exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"]
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
