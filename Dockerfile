# jumpgate container image.
#
#   docker build -t jumpgate .
#   docker run -p 8080:8080 jumpgate --allow-unauthenticated           # demo: embedded SageMaker simulator
#   docker run -p 8080:8080 -v "$PWD/jumpgate.yaml:/etc/jumpgate/jumpgate.yaml:ro" \
#     -e JUMPGATE_CONFIG=/etc/jumpgate/jumpgate.yaml -e AWS_REGION=us-east-1 jumpgate
#
# Configuration: mount the YAML file and point JUMPGATE_CONFIG at it, or append `--config FILE` to the
# run command (arguments after the image name are added to the entrypoint). AWS credentials come from the
# standard chain: the ECS task role or EKS IRSA / pod identity in production, never baked into the image.

# --- build stage: resolve and install the runtime dependencies into a self-contained virtualenv ---------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/jumpgate

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients ./clients
# A plain (non-editable) install of the project: [project.dependencies] only, none of the test extras.
RUN /opt/jumpgate/bin/pip install --no-cache-dir /src

# --- runtime stage: the virtualenv and nothing else from the build ---------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="jumpgate" \
      org.opencontainers.image.description="OpenAI-compatible gateway in front of Amazon SageMaker LLM endpoints"

RUN groupadd --system --gid 10001 jumpgate \
    && useradd --system --uid 10001 --gid jumpgate --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin jumpgate

COPY --from=build /opt/jumpgate /opt/jumpgate

ENV PATH=/opt/jumpgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /opt/jumpgate
USER 10001:10001
EXPOSE 8080

# Liveness of the process only (/healthz); readiness (/readyz: config loaded, credentials resolvable) is
# the orchestrator's probe. The slim image has no curl, so Python makes the request.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]

# Exec form: jumpgate is PID 1 and gets SIGTERM directly, so uvicorn drains in-flight requests on stop.
ENTRYPOINT ["jumpgate", "serve", "--host", "0.0.0.0", "--port", "8080"]
