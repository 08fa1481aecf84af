# cityseg service images, two targets from one file:
#   lean  LiteRT + ONNX Runtime + FastAPI, no TensorFlow: serves an exported .onnx/.tflite
#   full  the whole package with TensorFlow: also serves a Keras run folder
#
#   podman build --target lean --build-arg MODEL=/srv/model/model.onnx -t cityseg:lean .
#   (scripts/container.sh build lean PATH stages PATH into .container/model/ and runs this)
#
# The model is baked from .container/model/ (build argument MODEL = the path to serve inside
# the image), or mounted at run time: -v $PWD/runs/x/export:/models -e CITYSEG_RUN=/models/...
ARG BASE_IMAGE=debian:bookworm-slim

# ------------------------------------------------------------------ runtime-base: python 3.11
FROM ${BASE_IMAGE} AS runtime-base
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
 && useradd --system --uid 10001 --user-group --home-dir /srv --no-create-home \
      --shell /usr/sbin/nologin cityseg

# ------------------------------------------------------------------ builder: uv and the lock
FROM runtime-base AS builder
# A folder of extra CA certificates (*.crt) mounted into the build, for networks whose proxy
# re-signs TLS (scripts/container.sh passes the host's); empty elsewhere. Builder stage only.
ARG EXTRA_CA_DIR=
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_DIR" ]; then \
      cp "$EXTRA_CA_DIR"/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates; \
    fi
# pip and uv trust the system store (with those extra certificates) rather than their own.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv>=0.5,<1"
ENV PATH=/opt/uv/bin:$PATH UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /build
COPY pyproject.toml uv.lock ./
# Every version pinned by uv.lock; each image installs the part it needs.
RUN uv export --frozen --no-dev --extra cpu --no-emit-project --no-hashes \
      -o /build/constraints.txt
RUN uv venv --python /usr/bin/python3 /opt/venv

# ------------------------------------------------------------------ lean-venv: no TensorFlow
FROM builder AS lean-venv
# The runtime of the exported model: onnxruntime (.onnx) or ai-edge-litert (.tflite).
ARG LEAN_RUNTIME=onnxruntime
# What `cityseg serve` imports for an exported model, and nothing that pulls in TensorFlow.
RUN uv pip install --python /opt/venv/bin/python --compile-bytecode -c constraints.txt \
      numpy pillow scipy pyyaml typer rich fastapi uvicorn python-multipart pydantic-settings \
      swagger-ui-bundle-v2 ${LEAN_RUNTIME}
COPY README.md ./
COPY src ./src
# cityscapesscripts: only its label table is used; its plotting dependencies are not needed.
RUN uv pip install --python /opt/venv/bin/python --compile-bytecode --no-deps \
      -c constraints.txt cityscapesscripts .
# Trim what serving never loads: test suites, source maps, and every part of SciPy but
# ndimage (regions of the JSON answer) and the two modules it imports.
RUN site=/opt/venv/lib/python3.11/site-packages \
 && find "$site" -depth -type d -name tests -exec rm -rf {} + \
 && find "$site" -name "*.map" -delete \
 && for d in "$site"/scipy/*/; do \
      case "$(basename "$d")" in _lib|special|ndimage) ;; *) rm -rf "$d" ;; esac; \
    done \
 && /opt/venv/bin/python -c "import numpy as np; from cityseg.service import analysis, app; \
      m = np.zeros((9, 9), np.uint8); m[2:4, 2:5] = 7; \
      assert analysis.describe(m, 5)[7]['regions'][0]['bbox'] == [2, 2, 5, 4]; \
      import sys; assert not {'tensorflow', 'keras'} & set(sys.modules)"

# ------------------------------------------------------------------ full-venv: everything
FROM builder AS full-venv
RUN uv pip install --python /opt/venv/bin/python --compile-bytecode -r constraints.txt
COPY README.md ./
COPY src ./src
RUN uv pip install --python /opt/venv/bin/python --compile-bytecode --no-deps .

# ------------------------------------------------------------------ the two images
FROM runtime-base AS full
COPY --from=full-venv /opt/venv /opt/venv
ARG MODEL=/srv/model
COPY --chown=root:root .container/model/ /srv/model/
ENV PATH=/opt/venv/bin:$PATH CITYSEG_RUN=${MODEL} CITYSEG_HOST=0.0.0.0 CITYSEG_PORT=8000 \
    HOME=/tmp KERAS_HOME=/tmp/.keras MPLCONFIGDIR=/tmp/matplotlib TF_CPP_MIN_LOG_LEVEL=2
USER cityseg
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/opt/venv/bin/python", "-m", "cityseg.service.healthcheck"]
CMD ["cityseg", "serve", "--host", "0.0.0.0"]

FROM runtime-base AS lean
COPY --from=lean-venv /opt/venv /opt/venv
ARG MODEL=/srv/model
COPY --chown=root:root .container/model/ /srv/model/
ENV PATH=/opt/venv/bin:$PATH CITYSEG_RUN=${MODEL} CITYSEG_HOST=0.0.0.0 CITYSEG_PORT=8000 \
    HOME=/tmp
USER cityseg
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/opt/venv/bin/python", "-m", "cityseg.service.healthcheck"]
CMD ["cityseg", "serve", "--host", "0.0.0.0"]
