# The CPU image: web server, migrations, the io worker (and a CPU-only gpu worker for small tests).
# GPU workers use Dockerfile.cuda. Both are referenced by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /srv/gad-studio
# torch from PyTorch's CPU index first: PyPI's torch==2.13.0 for Linux is the CUDA build (GBs of
# nvidia libraries). 2.13.0+cpu satisfies the project's torch==2.13.0 pin.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY gad ./gad
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
COPY configs ./configs
RUN pip install --no-cache-dir -e .
ENV GAD_DATA_DIR=/data HF_HOME=/models
EXPOSE 8000
ENTRYPOINT ["gad-studio"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
