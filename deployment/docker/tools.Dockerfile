# The energy-edge tools (emulator, simulator) as one image, for deployment/docker-compose.yml.
# Build context: the repository root.
FROM python:3.11.14-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY shared/ ./shared/
COPY tools/emulator/ ./tools/emulator/
COPY tools/simulator/ ./tools/simulator/
COPY tools/cli/ ./tools/cli/
# The emulator and the simulator with their dependencies; the `energy-edge` front (tools/cli) without its own,
# which are the operator commands' (the front leaves out what it cannot import), as in the site-simulator image.
RUN pip install ./shared ./tools/emulator ./tools/simulator && pip install --no-deps ./tools/cli \
    && useradd --system --uid 10001 --home /app edge && mkdir -p /edge && chown edge /edge
COPY deployment/deployment.template.json ./deployment/
USER edge
ENTRYPOINT ["energy-edge"]
