# syntax=docker/dockerfile:1.7
# The reference instance server: the image COMPUTATRUM_INSTANCE_IMAGE names for the kubernetes
# runner's instances. Its entrypoint, computatrum-instance, serves the tiny trainer's checkpoint in
# COMPUTATRUM_MODEL_DIR through the OpenAI-compatible API on PORT (the instance contract in
# activities/runners/types.ts); the runner starts it without a command. It carries the computatrum
# CLI too: the pods' init container pulls the checkpoint with it (`checkpoints pull`).
# Built after the daemon's image, from the repository root:
#   docker build -f deploy/images/instance.Dockerfile \
#     --build-arg DAEMON_IMAGE=ghcr.io/computatrum/computatrum-daemon:<tag> \
#     -t ghcr.io/computatrum/computatrum-instance:<tag> .
ARG DAEMON_IMAGE=ghcr.io/computatrum/computatrum-daemon:latest
FROM ${DAEMON_IMAGE}
# In a pod the server listens on every interface (on a host it keeps to loopback).
ENV HOST=0.0.0.0 \
  PORT=8000
EXPOSE 8000
ENTRYPOINT ["computatrum-instance"]
CMD []
