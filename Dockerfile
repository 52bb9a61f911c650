# The image of the service's own processes: the gRPC server, the worker, the codec endpoint,
# the web pages and the migration step (docker-compose.yml runs each with its own command).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --uid 10001 --no-create-home registration
COPY server.py worker.py ./

# Secrets come from the environment (ENVIRONMENT=production never generates any).
USER registration
CMD ["python", "server.py"]
