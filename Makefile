# Ward — build, run and test. See README.md.
GO       ?= go
BIN      := bin/ward
AGENT    := bin/ward-agent
STATE    ?= .state
CONFIG   ?= examples
PKGS     := ./...
FUZZTIME ?= 10s
# images: where references point (REGISTRY) or where to push (PUSH), and for what.
REGISTRY  ?= ghcr.io/wardmesh
PUSH      ?=
PLATFORMS ?= linux/amd64,linux/arm64
VERSION   ?=

.PHONY: all build run demo demo-ambient test test-short bench lint fuzz tools clean images manifests

all: build

## build: ward (everything) and ward-agent (the workload agent alone, small enough to run beside every workload)
build:
	$(GO) build -o $(BIN) ./cmd/ward
	CGO_ENABLED=0 $(GO) build -o $(AGENT) ./cmd/ward-agent

## images: OCI images of ward and ward-agent (no Docker needed) in _out/images, with SBOMs and images.json;
## PUSH=registry/prefix also pushes them (see docs/release.md)
images:
	$(GO) run ./release/cmd/images -out _out/images -registry '$(REGISTRY)' -push '$(PUSH)' -platforms '$(PLATFORMS)' -version '$(VERSION)'

## run: the control plane on the example mesh, state in ./.state (git-ignored)
run: build
	$(BIN) serve --config $(CONFIG) --state $(STATE)

## demo: a loopback mesh of proxyless gRPC workloads showing mTLS, canary, authz and JWT (see README)
demo: build
	$(BIN) demo

## demo-ambient: ambient mode on network namespaces made for the purpose (root): mTLS over HBONE, STRICT, an L4 DENY; removes what it made
demo-ambient:
	./hack/demo-ambient.sh

## test: everything CI runs; installs what the tests need first
test:
	./hack/test.sh

test-short:
	$(GO) test -short $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	./hack/govulncheck.sh

## fuzz: a short run of every fuzz target
fuzz:
	./hack/fuzz.sh $(FUZZTIME)

## manifests: rewrite the kustomize base deploy/*.yaml from the Helm chart deploy/helm/ward (docs/install.md)
manifests:
	$(GO) test ./deploy -run TestKustomizeBaseUpToDate -update

clean:
	rm -rf bin _out
