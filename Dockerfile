# syntax=docker/dockerfile:1
# One image for every component: `minerguard webhook|agent|operator`.
# Build: docker build -t ghcr.io/minerguard/minerguard:dev .
# Pin the base by digest in releases (python:3.11-slim-bookworm@sha256:...).
# The test suite builds this file for real with buildah on a bookworm + Python 3.11 base made
# from Debian's packages (tests/integration/artifact/), passed as PYTHON_IMAGE.

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
# The operator is the installed package minerguard_operator (operator/minerguard_operator/).
COPY operator ./operator
# The runtime needs no installer: pip (and setuptools) leave the virtualenv once it is built.
RUN /opt/minerguard/bin/pip install --no-deps . \
    && /opt/minerguard/bin/python -m compileall -q /opt/minerguard/lib \
    && /opt/minerguard/bin/python -m pip uninstall -y -q pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="minerguard" \
      org.opencontainers.image.description="Layered cryptominer defence for Kubernetes" \
      org.opencontainers.image.source="https://github.com/minerguard/minerguard" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/minerguard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# nft: the agent's network layer blocks pool traffic in its own table (`inet minerguard`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables \
    && rm -rf /var/lib/apt/lists/*
# No pip for the base interpreter either (nor the wheels ensurepip would bootstrap it from):
# with /tmp writable, `pip install --target /tmp` would otherwise fetch code as any user.
# apt and dpkg stay: they need root and a writable root filesystem, which no component has
# (readOnlyRootFilesystem), and dpkg is essential to the base's package database.
RUN rm -rf /usr/local/bin/pip* /usr/local/lib/python3*/site-packages/pip \
           /usr/local/lib/python3*/site-packages/pip-* \
           /usr/local/lib/python3*/site-packages/setuptools* \
           /usr/local/lib/python3*/site-packages/wheel* \
           /usr/local/lib/python3*/ensurepip/_bundled/*.whl \
           /usr/share/python-wheels/pip-*.whl /usr/share/python-wheels/setuptools-*.whl \
    && groupadd --system --gid 65532 minerguard \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin minerguard
COPY --from=build /opt/minerguard /opt/minerguard
WORKDIR /opt/minerguard
# Non-root by default; the agent DaemonSet runs it as root with named capabilities only.
USER 65532:65532
ENTRYPOINT ["minerguard"]
CMD ["--help"]
