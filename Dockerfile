# syntax=docker/dockerfile:1
# One image for every process: the four APIs (uvicorn), the three ARQ workers (arq) and the
# `appointments` command (migrate, create-api-key, ...). Two stages: "builder" has the compiler
# and installs the project from pyproject.toml into /opt/venv; the final stage gets that venv
# and the sources only, and runs as the unprivileged user 10001.
#   docker build -t appointments:local .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# For dependencies without a wheel for this platform (only in this stage).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first, in a layer that changes only with pyproject.toml and constraints.txt
# (the versions CI tested): install the project from empty package stubs, then uninstall it
# and keep what it pulled in.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir shared services tools \
    && touch shared/__init__.py services/__init__.py tools/__init__.py \
    && pip install -c constraints.txt . \
    && pip uninstall -y appointments \
    && rm -rf shared services tools build ./*.egg-info
COPY alembic.ini ./
COPY alembic ./alembic
COPY shared ./shared
COPY services ./services
COPY tools ./tools
# Editable, so the code stays in /app beside alembic.ini and alembic/, which `appointments
# migrate` reads from the directory above tools/.
RUN pip install --no-deps -e .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 appointments \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin appointments
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
# Bytecode compiled now: at run time the root filesystem is read-only (Kubernetes) and nothing
# is written (PYTHONDONTWRITEBYTECODE). var/ is the only writable directory of the image (the
# default SQLite file of a bare `docker run`; a volume in docker-compose.yml).
RUN python -m compileall -q --invalidation-mode unchecked-hash \
        /app/shared /app/services /app/tools /app/alembic \
    && mkdir /app/var \
    && chown 10001:10001 /app/var
USER 10001:10001
EXPOSE 8001 8002 8003 8004 9100
# The booking API; every other process of the stack overrides the command (docker-compose.yml,
# deploy/k8s/).
CMD ["uvicorn", "--factory", "services.booking.app:create", "--host=0.0.0.0", "--port=8001", "--timeout-keep-alive=75"]
