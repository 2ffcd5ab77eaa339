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
lint: lint-proto lint-go ## buf lint, buf format check, buf breaking against the v1 baseline, go vet, gofmt, go.mod tidy

.PHONY: lint-proto
lint-proto: ## buf lint, buf format check, buf breaking against the v1 baseline
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) breaking --against proto/v1-baseline.binpb

.PHONY: lint-go
lint-go: ## go vet, gofmt, go.mod tidy
	go vet ./...
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@# go mod tidy -diff prints a diff on stdout when go.mod/go.sum would change, and errors
	@# (a module it cannot fetch) on stderr; both exit 1, so tell them apart by the output.
	@out=$$(go mod tidy -diff) || { if [ -n "$$out" ]; then echo "$$out"; \
		echo "go.mod/go.sum are not tidy (a // indirect marker, a requirement or a checksum is wrong): run 'go mod tidy' and commit the result"; \
		else echo "go mod tidy -diff failed (see above)"; fi; exit 1; }

.PHONY: build
build: ## build bin/tuturu
	go build -o bin/tuturu ./cmd/tuturu

.PHONY: run
run: ## run every service in one process on localhost (tuturu all)
	go run ./cmd/tuturu all

.PHONY: test
# On a fresh machine most of the time goes to compiling, and on two cores each compile keeps
# both busy: go vet's dependencies first (the tools, buf and the tests then reuse what it
# built), then grpcurl and buf, with Chromium's install beside them; then the tests. Running
# buf beside the tests instead saved 4 % and made timing-bound tests fail under the load.
# Output is grouped per target. End-to-end tests run eight at a time whatever the core count
# (browser scenarios are bounded by the cores in e2e). go vet has run every analyzer in
# lint-go, so go test's own vet pass is off.
test: ## lint, check gen/, run every test
	@$(MAKE) --no-print-directory -j2 --output-sync=target ensure-chromium checks
	go test -count=1 -vet=off -parallel 8 ./...

.PHONY: checks
checks: ## every check but the Go tests: the Go side, then the proto side (one after another)
	@$(MAKE) --no-print-directory checks-go
	@$(MAKE) --no-print-directory checks-proto

.PHONY: checks-proto
checks-proto: ## buf lint, format and breaking, then gen/ against a fresh buf generate
	@$(MAKE) --no-print-directory lint-proto
	@$(MAKE) --no-print-directory check-generated

.PHONY: checks-go
checks-go: ## go vet, gofmt, tidy, build the test tools, the web client's unit tests
	@$(MAKE) --no-print-directory lint-go
	@$(MAKE) --no-print-directory test-tools
	@$(MAKE) --no-print-directory test-web

.PHONY: test-tools
test-tools: ## build the tools the tests run (grpcurl, pebble) once, so parallel test packages find them built
	go tool -n -modfile=tools/grpcurl/go.mod grpcurl >/dev/null
	go tool -n -modfile=tools/pebble/go.mod pebble >/dev/null

.PHONY: test-traces
test-traces: ## a call through `tuturu all` read back from a real Jaeger v1.75.0 (first build: minutes)
	@# Build Jaeger first, outside go test's timeout; the test then finds it in the build cache.
	go tool -n -modfile=tools/jaeger/go.mod jaeger >/dev/null
	TUTURU_JAEGER=1 go test -count=1 -timeout 10m -run '^TestJaeger' -v ./e2e

.PHONY: test-web
test-web: ## unit tests of the browser client (reducer and helpers) with node --test
	cd web && node --test test/

.PHONY: ensure-chromium
ensure-chromium: ## install Debian's Chromium for the browser tests when missing (as root)
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "Chromium is missing and this is not root: run 'sudo apt-get update && sudo apt-get install -y chromium'"; \
		echo "(the browser tests in e2e/ fail without it, unless TUTURU_SKIP_BROWSER=1)"; \
	fi

.PHONY: bench-turn
bench-turn: ## turnsvc vs coturn relay throughput and CPU per packet (installs coturn if missing), Allocate latency
	turnsvc/bench/bench-turn.sh

.PHONY: clean
clean: ## remove build output and local data
	rm -rf bin data artifacts
