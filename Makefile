# dsync build. `make test` is what CI runs (through .ci/run).

GO            ?= go
BIN           := $(CURDIR)/bin
TOOLS         := $(CURDIR)/.tools
# Code generation tools, pinned. `make generate` reproduces the committed
# protobuf code byte for byte with exactly these versions.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
BUF_VERSION                := v1.75.0

export PATH := $(TOOLS):$(PATH)

.PHONY: all build generate check-generated lint vet test test-short demo bench tools clean

all: build

build:
	$(GO) build -o $(BIN)/dsync ./cmd/dsync

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

tools: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/buf

# Regenerate protobuf code from proto/ (committed).
generate: tools
	cd proto && buf generate

# Fail when the committed generated code differs from a fresh generation.
check-generated: generate
	@git diff --exit-code -- proto/ || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

lint: vet tools
	cd proto && buf lint
	@if git rev-parse -q --verify main >/dev/null && git cat-file -e main:proto/buf.yaml 2>/dev/null; then \
	  cd proto && buf breaking --against '../.git#branch=main,subdir=proto'; fi

# Everything CI checks: lint, generated code, and every test (unit, conformance
# through plugin subprocesses, end-to-end against real servers) under -race.
test: lint check-generated
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short ./...

# A MongoDB migration between two embedded FerretDB servers (a helper
# program, not part of dsync): no database to install.
demo: build
	$(GO) build -o $(BIN)/ferretdemo ./scripts/ferretdemo
	./scripts/demo.sh

# Throughput and memory figures, written to bench/RESULTS.md.
bench: build
	$(GO) run ./bench -out bench/RESULTS.md

clean:
	rm -rf $(BIN) $(TOOLS)
