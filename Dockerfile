# One image for every studio process (migrations, workers; the web app once it lands).
# GPU workers: build with the vllm extra and run with the NVIDIA runtime (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /srv/gad-studio
COPY pyproject.toml README.md ./
COPY gad ./gad
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
ARG EXTRAS=""
RUN pip install --no-cache-dir -e ".${EXTRAS}"
ENV GAD_DATA_DIR=/data
ENTRYPOINT ["gad-studio"]
