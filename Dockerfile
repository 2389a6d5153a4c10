# The geoai game as a container: Streamlit on port 8501, leaderboard in GEOAI_DATABASE_URL,
# maps, model bundles and backbones mounted (or baked in, see README "Host it").
#
#   docker build -t geoai .
#   docker run -p 127.0.0.1:8501:8501 -v /path/to/datasets:/srv/maps:ro -v "$PWD/models":/srv/models:ro geoai
#
# BASE: any Debian-like image; python:3.11-slim by default. A bare Debian base (built with
# debootstrap where no registry is reachable, scripts/docker-base.sh) gets Python 3.11 from apt.
ARG BASE=python:3.11-slim

FROM ${BASE} AS python
RUN if ! command -v python3 >/dev/null 2>&1; then \
      apt-get update -q && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        python3 python3-venv ca-certificates && \
      rm -rf /var/lib/apt/lists/*; \
    fi

# Build stage: a virtual environment with CPU torch and the pinned requirements. docker/build/
# may hold pip settings for this build only (scripts/docker-build.sh fills it from the host's
# pip configuration: CA bundle, local torch wheel); nothing of it reaches the final image.
FROM python AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY docker/build/ /build/
RUN set -eu; \
    if [ -f /build/pip.conf ]; then export PIP_CONFIG_FILE=/build/pip.conf; fi; \
    python3 -m venv /opt/venv; \
    if ls /build/wheels/torch-2.13.0*.whl >/dev/null 2>&1; then \
      /opt/venv/bin/pip install --no-cache-dir /build/wheels/torch-2.13.0*.whl; \
    else \
      /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0; \
    fi
COPY requirements.txt /build/requirements.txt
# The test tools (pytest, Playwright) stay out of the image.
RUN set -eu; \
    if [ -f /build/pip.conf ]; then export PIP_CONFIG_FILE=/build/pip.conf; fi; \
    grep -v -E '^(pytest|pytest-timeout|playwright)==' /build/requirements.txt > /build/runtime.txt; \
    /opt/venv/bin/pip install --no-cache-dir -r /build/runtime.txt; \
    /opt/venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

FROM python AS runtime
# uid 1000: what Hugging Face Spaces runs containers as.
RUN useradd --create-home --uid 1000 geoai && \
    mkdir -p /srv/maps /srv/models /srv/checkpoints /srv/state && chown geoai /srv/state
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY .streamlit .streamlit
COPY app app
COPY assets assets
COPY db db
COPY geoai geoai
COPY train train
COPY pyproject.toml requirements.txt README.md ./
# The project itself, editable as in a checkout (its assets/ stay beside the code); the
# dependencies are already in the venv, and setuptools comes with it.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation --disable-pip-version-check -e . \
    && rm -rf geoai.egg-info
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    GEOAI_DATA_DIR=/srv/maps \
    GEOAI_MODELS_DIR=/srv/models \
    GEOAI_CHECKPOINTS=/srv/checkpoints \
    GEOAI_DATABASE_URL=sqlite:////srv/state/geoai.sqlite \
    GEOAI_SALIENCY=on-request \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none
USER geoai
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_stcore/health' % os.environ['STREAMLIT_SERVER_PORT'], timeout=4)"
CMD ["streamlit", "run", "app/main.py"]
