# syntax=docker/dockerfile:1
#
# netloom's image, the one deploy/netloom.yaml runs: every netloom binary under /netloom/bin and nothing
# else (all static Go). The DaemonSet's init container runs `netloomd install-cni`, which copies them into
# the node's /opt/cni/bin (mounted at /host/opt/cni/bin) under temporary names renamed into place, then its
# main container runs `netloomd cluster`. `make image` writes the same image as bin/netloom-image.tar
# without a daemon (test/image); this file is for those who build with docker:
#
#   docker build -t netloom/netloom:0.1.0 .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Without --build-arg VERSION, the Makefile takes `git describe` of the copied .git (or "dev").
ARG VERSION
RUN make build ${VERSION:+VERSION=$VERSION}

FROM scratch
COPY --from=build /src/bin/ /netloom/bin/
ENV PATH=/netloom/bin
ENTRYPOINT ["/netloom/bin/netloomd"]
