# syntax=docker/dockerfile:1.7
# The daemon: `computatrum up --only worker` and `up --only platform` (deploy/kustomize), and the CLI
# (the instances' pull init container runs `node bin/computatrum.js checkpoints pull`). Production
# dependencies only, the code compiled into dist/, and the workflows prebuilt into one bundle that
# the worker loads at start (COMPUTATRUM_WORKFLOW_BUNDLE) instead of running webpack.
# Built from the repository root (.dockerignore keeps node_modules, dist and tests out):
#   docker build -f deploy/images/daemon.Dockerfile -t ghcr.io/computatrum/computatrum-daemon:<tag> .
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The dependencies first, cached while only the sources change. No install scripts: the two that
# matter (Prisma's client, the build) run below, once the sources are there.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npx prisma generate \
  && npm run build \
  && npm run build:workflows -- /app/workflow-bundle/workflows.js
# Production dependencies only; the generated Prisma client (node_modules/.prisma) stays.
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
  COMPUTATRUM_WORKFLOW_BUNDLE=/app/workflow-bundle/workflows.js \
  COMPUTATRUM_DATA_DIR=/var/lib/computatrum \
  PLATFORM_HOST=0.0.0.0 \
  LOG_PRETTY=false
WORKDIR /app
COPY --from=build /app /app
# dist/ was compiled from exactly these sources; stamped after the copy, whatever times it kept, so
# bin/computatrum.js runs it as it is. The bundle is checked against the pruned tree now, as the
# worker checks it at start. The entrypoints of the trainer and instance images go on PATH.
RUN touch /app/dist/.build-stamp \
  && node scripts/build-workflows.js --check "$COMPUTATRUM_WORKFLOW_BUNDLE" \
  && ln -s /app/bin/computatrum.js /usr/local/bin/computatrum \
  && ln -s /app/bin/computatrum-train.js /usr/local/bin/computatrum-train \
  && ln -s /app/bin/computatrum-instance.js /usr/local/bin/computatrum-instance \
  && mkdir -p /var/lib/computatrum \
  && chown 10001:10001 /var/lib/computatrum
# The manifests' runAsUser; the code is root's and read-only to it.
USER 10001:10001
# PLATFORM_PORT (the platform, and the worker's probes) and COMPUTATRUM_METRICS_PORT.
EXPOSE 8080 9464
ENTRYPOINT ["node", "/app/bin/computatrum.js"]
CMD ["up"]
