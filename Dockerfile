# syntax=docker/dockerfile:1
# One image, one static binary: `tuturu gateway|roomsvc|credsvc|turnsvc|all`.

FROM golang:1.26 AS build
WORKDIR /src
COPY . .
# Cache mounts keep modules and build results between builds without putting them in a layer.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags="-s -w" -o /out/tuturu ./cmd/tuturu \
    && mkdir -p /out/empty

# static: CA certificates, tzdata and a nonroot user (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tuturu /tuturu
# Named volumes start as a copy of the image's directory, so these set their owner to nonroot.
COPY --from=build --chown=65532:65532 /out/empty /data
COPY --from=build --chown=65532:65532 /out/empty /var/lib/credsvc
ENV DATA_DIR=/data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/tuturu"]
CMD ["all"]
# The image's default target (all) serves the gateway on 8080; compose probes each service's
# own port instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/tuturu", "healthcheck", "-addr", "127.0.0.1:8080"]
