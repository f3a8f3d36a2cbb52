# The platform's image: `fraud serve` by default, with the pinned dependencies, as a non-root user.
# docker-compose.yml runs its bootstrap, worker and jobs from it with their own commands and
# healthchecks. /data belongs to that user: a named volume mounted there takes its ownership.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FRAUD_DATA_DIR=/data
RUN useradd --create-home --uid 10001 fraud && mkdir /data && chown fraud /data
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY contracts ./contracts
COPY data ./data
COPY feature_repo ./feature_repo
COPY training ./training
COPY serving ./serving
COPY monitoring ./monitoring
COPY fraud ./fraud
RUN pip install -c requirements.lock .

USER fraud
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" || exit 1
CMD ["fraud", "serve", "--host", "0.0.0.0", "--port", "8000"]
