# The energy-edge tools (emulator, simulator) as one image, for deployment/docker-compose.yml.
# Build context: the repository root.
FROM python:3.11.14-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY shared/ ./shared/
COPY pyproject.toml README.md ./
COPY tools/ ./tools/
RUN pip install ./shared . && useradd --system --uid 10001 --home /app edge && mkdir -p /edge && chown edge /edge
COPY deployment/deployment.template.json ./deployment/
USER edge
ENTRYPOINT ["energy-edge"]
