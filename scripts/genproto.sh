#!/usr/bin/env bash
# Regenerates the Go and Python protobuf code from proto/ with pinned tools:
# protoc comes from the grpcio-tools wheel (the same protoc for both languages),
# the Go plugins are installed at fixed versions.
set -euo pipefail
cd "$(dirname "$0")/.."

GRPCIO_TOOLS_VERSION=1.85.1
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

tools=.tools
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv"
fi
"$tools/venv/bin/pip" install -q "grpcio-tools==${GRPCIO_TOOLS_VERSION}"
GOBIN="$PWD/$tools/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$PWD/$tools/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

protos=$(cd proto && ls runlog/v1/*.proto)
(
  cd proto
  ../"$tools"/venv/bin/python -m grpc_tools.protoc -I . \
    --plugin=protoc-gen-go="../$tools/bin/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="../$tools/bin/protoc-gen-go-grpc" \
    --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative \
    $protos
)
# The wandb wire subset is Go only: a Python module of it would clash with
# the wandb SDK's own descriptors in a process that imports both.
(
  cd proto
  ../"$tools"/venv/bin/python -m grpc_tools.protoc -I . \
    --plugin=protoc-gen-go="../$tools/bin/protoc-gen-go" \
    --go_out=. --go_opt=paths=source_relative \
    wandb/v1/*.proto
)
# Python stubs land inside the runlog package: runlog/v1/*_pb2.py import each
# other as runlog.v1.*, which is the installed package's own namespace.
mkdir -p python/src/runlog/v1
(
  cd proto
  ../"$tools"/venv/bin/python -m grpc_tools.protoc -I . \
    --python_out=../python/src \
    --pyi_out=../python/src \
    --grpc_python_out=../python/src \
    $protos
)
touch python/src/runlog/v1/__init__.py
