# The XR inspection server image. CPU by default; the compose file reserves a GPU for it.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libusb-1.0-0 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY calibration calibration
COPY pipeline pipeline
COPY overlays overlays
COPY xrserver xrserver
COPY clients clients
RUN pip install --no-cache-dir "torch==2.13.0" && pip install --no-cache-dir ".[gpu]"
RUN useradd --create-home --uid 10001 xr && mkdir -p /data /models && chown xr /data /models
USER xr
VOLUME ["/data", "/models"]
ENTRYPOINT ["xrserver"]
EXPOSE 8765
CMD ["serve", "--host", "0.0.0.0"]
