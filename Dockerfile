# Image for the Dagster webserver and daemon of docker-compose.yml.
FROM python:3.12-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY ntrader_pipeline ./ntrader_pipeline
COPY strategy_configs ./strategy_configs
COPY workspace.yaml ./
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
# Run as a plain user (uid/gid from docker-compose, default 1000), owning every folder it writes:
# the state volume, Dagster's storage and the inbox and reports mount points.
ARG UID=1000
ARG GID=1000
RUN groupadd --gid "$GID" ntrader \
    && useradd --uid "$UID" --gid "$GID" --create-home ntrader \
    && mkdir -p /data/ntrader /data/inbox /data/reports /opt/dagster/home/storage \
    && chown -R ntrader:ntrader /data /opt/dagster
USER ntrader
