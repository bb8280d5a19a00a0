# clbench with Ray, for every node of a cluster (the head runs `clbench sweep`, workers
# run its runs). Two variants from one file:
#
#   docker build -t clbench:cpu .
#   docker build -t clbench:cuda --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#
# Not built or run where clbench is developed (no container daemon there): it is checked
# only by tests/test_cluster_configs.py, which reads it. Build it, run
# `docker run --rm clbench:cpu clbench evaluate --strategy simplecil`, and push it to a
# registry your cluster can pull from.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive

# The CUDA base images have no Python; the slim image has no image libraries for Pillow
# to need. openclipart-png and fonts-dejavu-core are the offline default's images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
       openclipart-png fonts-dejavu-core rsync \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/clbench
ENV PATH=/opt/clbench/bin:$PATH

# torch first, from the index of the variant (CPU wheels, or CUDA ones)
RUN pip install torch torchvision --index-url ${TORCH_INDEX}

WORKDIR /opt/clbench/src
COPY pyproject.toml README.md ./
COPY cl_bench ./cl_bench
COPY plugins ./plugins
COPY streams ./streams
RUN pip install ".[ray]"

# Caches and records: mount volumes here (a shared file system for the cache is optional,
# see docs/sweeps.md "On a GPU cluster").
ENV CLBENCH_CACHE_DIR=/cache
WORKDIR /work
CMD ["clbench", "--help"]
