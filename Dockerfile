# syntax=docker/dockerfile:1
# One image for every component: `minerguard webhook|agent|operator`.
# Build: docker build -t ghcr.io/minerguard/minerguard:dev .
# Pin the base by digest in releases (python:3.11-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/minerguard
WORKDIR /src
# Dependencies first, so source edits do not reinstall them.
COPY pyproject.toml README.md* ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN /opt/minerguard/bin/pip install -r /tmp/requirements.txt
COPY minerguard ./minerguard
COPY webhook ./webhook
COPY node_agent ./node_agent
RUN /opt/minerguard/bin/pip install --no-deps . \
    && /opt/minerguard/bin/python -m compileall -q /opt/minerguard/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="minerguard" \
      org.opencontainers.image.description="Layered cryptominer defence for Kubernetes" \
      org.opencontainers.image.source="https://github.com/minerguard/minerguard" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/minerguard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 65532 minerguard \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin minerguard
COPY --from=build /opt/minerguard /opt/minerguard
# kopf handler files, run by path (`operator/` is not a Python package: see STYLE.md).
COPY operator /opt/minerguard/operator
WORKDIR /opt/minerguard
# Non-root by default; the agent DaemonSet runs it as root with named capabilities only.
USER 65532:65532
ENTRYPOINT ["minerguard"]
CMD ["--help"]
