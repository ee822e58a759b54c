# The Phalanx operator image.
#
#   docker build -t phalanx:dev .
#
# The chart (charts/phalanx) runs it as the numeric non-root user below with a read-only root
# filesystem; the operator serves Prometheus metrics on 8080 (PHALANX_METRICS_PORT) and Kopf's health
# endpoint on 8081 (/healthz).
FROM python:3.11-slim

# MALLOC_ARENA_MAX: the operator's threads (watches, API writers) would each grow a malloc arena of
# their own; two keep its memory at rest under 300 MB with 1,000 stores (318 MB without; README, Scale).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A numeric user, so that the kubelet can verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 phalanx \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin phalanx

# Only what the package build needs: the build context also holds .venv, .tools and test data, and
# operator/ holds the sandbox (local control plane, simulator), which never ships in the image.
COPY pyproject.toml README.md /src/
COPY operator/phalanx /src/operator/phalanx
RUN pip install /src && rm -rf /src

USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "phalanx"]
