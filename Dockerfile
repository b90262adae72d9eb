# ollamux in a container: docker build -t ollamux . && docker run -p 11535:11535 \
#   -e OLLAMUX_BACKENDS=http://gpu1:11434,http://gpu2:11434 ollamux
# With no keys configured it refuses to listen on 0.0.0.0: add keys (a config file) or,
# on a private network only, -e OLLAMUX_AUTH__ALLOW_ANONYMOUS=true.
# With a config file: -v ./ollamux.yaml:/etc/ollamux/ollamux.yaml -e OLLAMUX_CONFIG=/etc/ollamux/ollamux.yaml
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home ollamux \
    && rm -rf /src

USER ollamux
WORKDIR /data
# Listen on every interface inside the container; SQLite files (tasks, jobs) go to /data.
ENV OLLAMUX_HOST=0.0.0.0 \
    OLLAMUX_PORT=11535
VOLUME ["/data"]
EXPOSE 11535

# SIGTERM drains streams in flight for server.shutdown_timeout_s (30 s by default):
# give `docker stop` / Kubernetes a longer grace period than that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD python -c "import socket; socket.create_connection(('127.0.0.1', 11535), 2).close()"

ENTRYPOINT ["ollamux"]
CMD ["serve"]
