# One image for every process; compose picks the command. The last stage (production) is
# what `docker build .` builds: the runtime packages only. The Intuit and Xero emulators are
# development tools: only the `emulator` target (compose's "emulator" profile) adds them.
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
EXPOSE 8080 50051 50052
CMD ["aicollect", "--help"]

# The runtime plus emulators/ (`python -m emulators.qbo`, `python -m emulators.xero`);
# never deployed.
FROM runtime AS emulator
COPY emulators /opt/aicollect-dev/emulators
ENV PYTHONPATH=/opt/aicollect-dev
EXPOSE 8090 8091
CMD ["python", "-m", "emulators.qbo", "--host", "0.0.0.0", "--port", "8090"]

FROM runtime AS production
