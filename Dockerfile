# syntax=docker/dockerfile:1
#
# netloom's install image, for the usual CNI install DaemonSet: run it (typically as an init container)
# with the node's /opt/cni/bin mounted at /host/opt/cni/bin, and it copies the plugins there.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty --tags) -t netloom .
#   docker run --rm -v /opt/cni/bin:/host/opt/cni/bin netloom

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Without --build-arg VERSION, the Makefile takes `git describe` of the copied .git (or "dev").
ARG VERSION
RUN make build ${VERSION:+VERSION=$VERSION}

FROM busybox:1.37
COPY --from=build /src/bin/ /netloom/bin/
# Each binary is copied under a temporary name and renamed into place, so a runtime that execs a plugin
# while the installer runs never sees a half-written file.
COPY --chmod=0755 <<'INSTALL' /usr/local/bin/install-cni
#!/bin/sh
set -eu
dest=${CNI_BIN_DIR:-/host/opt/cni/bin}
mkdir -p "$dest"
for src in /netloom/bin/*; do
	name=$(basename "$src")
	cp "$src" "$dest/.$name.netloom-tmp"
	chmod 0755 "$dest/.$name.netloom-tmp"
	mv -f "$dest/.$name.netloom-tmp" "$dest/$name"
	echo "installed $dest/$name"
done
INSTALL
ENTRYPOINT ["/usr/local/bin/install-cni"]
