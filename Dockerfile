# syntax=docker/dockerfile:1
# toloka-gateway image: a build stage that runs the same Makefile targets as CI (install + proto codegen),
# then a slim runtime stage with only the installed package and its runtime dependencies.
#   docker build -t toloka-gateway:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# make is the only build tool the slim image lacks; grpcio and friends install from wheels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# `install-runtime` (Makefile) = `make install` (dev venv with grpcio-tools + `make proto`, as CI runs it)
# followed by a NON-editable `pip install .` of the package and its runtime dependencies alone into
# RUNTIME_VENV. Only RUNTIME_VENV is copied into the runtime stage: no grpcio-tools, mypy, ruff or pytest.
RUN make install-runtime VENV=/opt/build-venv RUNTIME_VENV=/opt/venv

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:${PATH}
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
# Same base image and same path as in the build stage, so the venv's interpreter links stay valid.
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
# 50051: gRPC (TolokaGateway, grpc.health.v1, reflection); 9090: Prometheus metrics.
EXPOSE 50051 9090
ENTRYPOINT ["toloka-gateway"]
CMD ["serve"]
