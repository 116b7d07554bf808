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
