# syntax=docker/dockerfile:1.7
# The reference trainer: the image deploy/training-job.yaml names. Its entrypoint, computatrum-train
# (activities/runners/kubernetes/trainer-pod.ts), pulls the run's base and datasets from the
# registry, runs the tiny trainer (a character-level model, on the CPU) under the trainer contract,
# and pushes the newest checkpoint to COMPUTATRUM_OUTPUT_REF. A real trainer keeps the entrypoint and
# names its own program after `--`: `command: ["computatrum-train", "--", "python", "train.py"]`,
# in an image that has both (e.g. FROM your CUDA/PyTorch image, with Node 20 and this image's /app).
# Built after the daemon's image, from the repository root:
#   docker build -f deploy/images/trainer.Dockerfile \
#     --build-arg DAEMON_IMAGE=ghcr.io/computatrum/computatrum-daemon:<tag> \
#     -t ghcr.io/computatrum/computatrum-trainer:<tag> .
ARG DAEMON_IMAGE=ghcr.io/computatrum/computatrum-daemon:latest
FROM ${DAEMON_IMAGE}
ENV COMPUTATRUM_BASE_DIR=/var/lib/computatrum/base \
  COMPUTATRUM_OUTPUT_DIR=/var/lib/computatrum/output
ENTRYPOINT ["computatrum-train"]
CMD []
