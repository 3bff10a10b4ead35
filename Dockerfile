# One image for every process; compose picks the command.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY aicollect ./aicollect
COPY services ./services
COPY gateway ./gateway
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --system --uid 10001 aicollect
USER aicollect
EXPOSE 8080 50051 50052 8090
CMD ["aicollect", "--help"]
