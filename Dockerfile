# The locked implicit2 environment and the package, as a container image for
# `snakemake --sdm apptainer` and Kubernetes-style executors (docs/container.md).
#
# Build from the repository root (Docker or Podman):
#   docker build -t implicit2:0.2.0 .                                 # CPU torch (PyTorch's CPU index)
#   docker build --build-arg TORCH=cuda -t implicit2:0.2.0-cuda .     # PyPI's torch with CUDA
# BASE is any Debian bookworm image (Python 3.11, the lock's Python); TORCH_PIP_ARGS tells pip
# where else the torch wheel lies (e.g. --find-links DIR with DIR mounted into the build);
# PIP_CA_BUNDLE is a CA file for pip behind a TLS-inspecting proxy (mounted into the build).
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

ARG TORCH=cpu
ARG TORCH_PIP_ARGS=
ARG PIP_CA_BUNDLE=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates procps \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# The locked environment, hashes required (as `make setup`): first everything but torch, then
# one torch build. The CPU build is not on PyPI: without TORCH_PIP_ARGS it comes from PyTorch's
# CPU index.
COPY requirements/ /opt/implicit2/requirements/
RUN case "$TORCH" in cpu|cuda) ;; *) echo "TORCH=$TORCH: use cpu or cuda" >&2; exit 2;; esac \
    && if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="$PIP_CA_BUNDLE"; fi \
    && pip install --quiet --require-hashes --no-deps -r /opt/implicit2/requirements/lock.txt \
    && if [ -z "$TORCH_PIP_ARGS" ] && [ "$TORCH" = cpu ]; then \
           TORCH_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"; fi \
    && pip install --quiet --require-hashes --no-deps \
           -r "/opt/implicit2/requirements/torch-$TORCH.txt" $TORCH_PIP_ARGS

# The package itself, without dependencies (its build backend is in the lock). Editable, so that
# provenance finds requirements/ beside it and records the lock's hashes.
COPY pyproject.toml README.md LICENSE CITATION.cff /opt/implicit2/
COPY src/ /opt/implicit2/src/
# The config schema, which the library reads for the tasks' defaults (`implicit2 fit` too).
COPY workflow/schemas/ /opt/implicit2/workflow/schemas/
RUN pip install --quiet --no-deps --no-build-isolation -e /opt/implicit2 \
    && pip check \
    && python -c "import implicit2, torch; print('implicit2', implicit2.__version__, 'torch', torch.__version__)"

WORKDIR /work
CMD ["python", "-m", "implicit2", "--help"]
