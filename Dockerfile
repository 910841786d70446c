# syntax=docker/dockerfile:1
# mjcore in a container: stage 1 builds the wheel, stage 2 installs it with its server and
# database extras into a venv and runs `mjcore serve` as a non-root user.
# tests/integration/test_container.py runs these same steps without Docker (the RUN lines
# as written, with $VENV and $WHEELS pointing at temporary directories) and checks that
# this file keeps in step: extras, user, port, health check.

FROM python:3.11-slim AS build
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m pip wheel --no-deps --wheel-dir dist .

FROM python:3.11-slim
ARG WHEELS=/tmp/wheels
ENV VENV=/opt/mjcore \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
ENV PATH=$VENV/bin:$PATH \
    MJCORE_DATABASE_URL=sqlite:////var/lib/mjcore/mjcore.db \
    MJCORE_IMAGE_DIR=/var/lib/mjcore/images
# a system user owning only its data directory (the SQLite file and the images)
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/mjcore --create-home mjcore \
    && install -d -o mjcore -g mjcore /var/lib/mjcore/images
COPY --from=build /build/dist/ $WHEELS/
RUN python -m venv "$VENV" \
    && "$VENV/bin/pip" install "$(ls "$WHEELS"/mjcore-*.whl)[server,postgres,mysql]" \
    && rm -rf "$WHEELS"
USER mjcore
WORKDIR /var/lib/mjcore
EXPOSE 8086
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8086/readyz', timeout=4)"]
CMD ["mjcore", "serve", "--host", "0.0.0.0", "--port", "8086"]
