#!/bin/sh
# Builds and runs the Go example in GOPATH mode against Debian's packaged gRPC and protobuf (no Go module
# proxy needed). The Debian packages it needs are listed in debian-packages.txt:
#   apt-get install $(cat debian-packages.txt)
#   ./run.sh [--target HOST:PORT] [--pool-id ID]
# Everything it makes lands in build/ next to this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$here/build
proto=$here/../../protos/gateway/api/toloka/gateway/v1/gateway.proto
mkdir -p "$build/proto/toloka/gateway/v1" "$build/src/toloka/gateway/v1" "$build/src/firstcall"
# Debian's protoc-gen-go (1.3) predates proto3 `optional`: generate from a copy without the keyword. The
# wire format is the same; only "set to 0" and "unset" look alike to this client.
sed -E 's/^([[:space:]]*)optional /\1/' "$proto" > "$build/proto/toloka/gateway/v1/gateway.proto"
wkt=github.com/golang/protobuf/ptypes
map="Mgoogle/protobuf/duration.proto=$wkt/duration,Mgoogle/protobuf/struct.proto=$wkt/struct"
map="$map,Mgoogle/protobuf/timestamp.proto=$wkt/timestamp"
protoc -I "$build/proto" -I /usr/include --go_out="$map:$build/src" --go-grpc_out="$build/src" \
  toloka/gateway/v1/gateway.proto
cp "$here/firstcall/main.go" "$build/src/firstcall/main.go"
GO111MODULE=off GOPATH="$build:/usr/share/gocode" GOFLAGS= go build -o "$build/firstcall" firstcall
exec "$build/firstcall" "$@"
