# erpbridge as a container image: `docker build -t erpbridge .`
#
# Stage 1 builds the wheel (and wheels of every dependency) with the build tools; stage 2 is a
# slim runtime that installs only those wheels and the Debian libraries the hub loads at run
# time, and runs as an unprivileged user. Configuration and data are volumes:
#   /etc/erpbridge     erpbridge.yaml (read-only is fine), TLS files, the secret key file
#   /var/lib/erpbridge the SQLite hub of the one-process shape, drop folders, archives
# The default command is the embedded hub (`erpbridge run`); the scaled-out shape overrides it
# with `worker` or `api` (deploy/compose.yaml). See docs/deployment.md.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres,mysql,soap,sftp,pdf,amqp,nats]'

FROM python:3.11-slim-bookworm
# xmlsec1: SAML signatures; Pango and HarfBuzz: PDF documents (WeasyPrint); postgresql-client:
# `erpbridge db backup` of a PostgreSQL hub; tini: signals reach erpbridge as PID 1's child
RUN apt-get update \
    && apt-get install -y --no-install-recommends xmlsec1 libpango-1.0-0 libpangoft2-1.0-0 \
       libharfbuzz0b libfontconfig1 fonts-dejavu-core postgresql-client tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'erpbridge[postgres,mysql,soap,sftp,pdf,amqp,nats]' \
    && rm -rf /wheels
RUN useradd --system --uid 10001 --home-dir /var/lib/erpbridge --shell /usr/sbin/nologin erpbridge \
    && mkdir -p /etc/erpbridge /var/lib/erpbridge \
    && chown erpbridge:erpbridge /var/lib/erpbridge
USER erpbridge
WORKDIR /var/lib/erpbridge
ENV ERPBRIDGE_CONFIG=/etc/erpbridge/erpbridge.yaml \
    PYTHONUNBUFFERED=1
VOLUME ["/etc/erpbridge", "/var/lib/erpbridge"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["tini", "--", "erpbridge"]
CMD ["run", "--host", "0.0.0.0", "--port", "8080"]
