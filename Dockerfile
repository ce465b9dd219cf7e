# syntax=docker/dockerfile:1
#
# tagwatch's container image: a static binary on scratch, run as the
# non-root user 65532, keeping its state in the /data volume: the bbolt
# file and, beside it, the key that encrypts its secrets
# (/data/tagwatch.db.key, made on first start; TAGWATCH_SECRET_KEY_FILE
# gives one from elsewhere, e.g. a compose secret).
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t tagwatch .
#
# The image listens on 0.0.0.0:8080 inside the container (a published port
# needs that) and therefore refuses to start unless the UI and API are
# protected (TAGWATCH_WEB_AUTH_*) or TAGWATCH_WEB_ALLOWREMOTE=true says that
# something else protects them: see compose.yaml and README.md.
#
# cmd/tagwatch/image_test.go builds the same image without a Docker engine
# from this file's final stage (its COPY, ENV, USER, … instructions), runs
# it on a real dockerd, and fails when it meets an instruction it does not
# know: keep the final stage to those instructions.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tagwatch ./cmd/tagwatch \
 && mkdir /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY contrib/image/passwd /etc/passwd
COPY contrib/image/group /etc/group
COPY --from=build --chown=65532:65532 --chmod=0750 /out/data /data
COPY --from=build /out/tagwatch /tagwatch
LABEL org.opencontainers.image.title="tagwatch" \
      org.opencontainers.image.description="Watches the container images you run and tells you when their registries have a newer version or a new digest" \
      org.opencontainers.image.source="https://github.com/tagwatch/tagwatch"
ENV TAGWATCH_DATA=/data/tagwatch.db TAGWATCH_WEB_LISTEN=0.0.0.0:8080
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["/tagwatch", "healthcheck"]
ENTRYPOINT ["/tagwatch"]
CMD ["serve"]
