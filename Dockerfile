# syntax=docker/dockerfile:1
# The selauto image the Helm chart (deploy/helm/selective-autonomy) runs for the worker, console,
# executor and topic Job. The chart sets `command: ["selauto"]` and passes the subcommand as args,
# which replace ENTRYPOINT and CMD here, so nothing is doubled.
#   docker build -t ghcr.io/selective-autonomy/selective-autonomy:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, from the PyTorch CPU index, so that `pip install .` finds torch==2.13.0 satisfied
# (2.13.0+cpu matches) and never pulls the CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY selective_autonomy ./selective_autonomy
RUN pip install .

FROM ${PYTHON_IMAGE}
# The chart mounts the root filesystem read-only with a writable /tmp: caches go there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/selauto \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib
# uid/gid 10001: the chart's podSecurityContext.runAsUser / runAsGroup.
RUN groupadd --gid 10001 selauto \
    && useradd --uid 10001 --gid 10001 --home-dir /home/selauto --create-home \
       --shell /usr/sbin/nologin selauto
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/selauto
USER 10001:10001
# worker health (worker.port), executor health (executor.port), console (console.port)
EXPOSE 6066 6067 8080
ENTRYPOINT ["selauto"]
CMD ["--help"]
