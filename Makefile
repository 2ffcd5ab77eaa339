# tuturu developer entry points. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BUF     := go tool -modfile=tools/buf/go.mod buf
GRPCURL := go tool -modfile=tools/grpcurl/go.mod grpcurl
GO_FILES = $(shell git ls-files --cached --others --exclude-standard '*.go' | grep -v '^gen/')

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## regenerate gen/ from proto/ with buf (local plugins)
	rm -rf gen
	$(BUF) generate

.PHONY: check-generated
check-generated: ## fail if gen/ differs from a fresh buf generate
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BUF) generate -o "$$tmp" && \
	if ! diff -r gen "$$tmp/gen"; then echo "gen/ is stale: run 'make generate' and commit"; exit 1; fi

.PHONY: lint
lint: ## buf lint, buf format check, go vet, gofmt
	$(BUF) lint
	$(BUF) format --diff --exit-code
	go vet ./...
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: build
build: ## build bin/tuturu
	go build -o bin/tuturu ./cmd/tuturu

.PHONY: run
run: ## run every service in one process on localhost (tuturu all)
	go run ./cmd/tuturu all

.PHONY: test
test: lint check-generated ## lint, check gen/, run every test
	go test -count=1 ./...

.PHONY: clean
clean: ## remove build output and local data
	rm -rf bin data artifacts
