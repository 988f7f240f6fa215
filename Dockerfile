# syntax=docker/dockerfile:1
# Builds the two slmops images as static binaries for the target platform
# (linux/amd64 or linux/arm64, from TARGETOS/TARGETARCH) in distroless
# images that run as a non-root user:
#   docker build --target manager -t ghcr.io/slmops/manager:dev .
#   docker build --target inferd  -t ghcr.io/slmops/inferd:dev .
# The default target (the last stage) is the manager.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY inferd/ inferd/
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags "-s -w" -o /out/manager ./cmd/manager && \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/inferd ./cmd/inferd

# inferd writes only to its model cache (a hostPath the operator mounts) and
# /tmp; the root filesystem is mounted read-only by the DaemonSet.
FROM gcr.io/distroless/static:nonroot AS inferd
COPY --from=build /out/inferd /inferd
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/inferd"]

FROM gcr.io/distroless/static:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
