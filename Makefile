# AMS developer entry points. Every target calls a script in scripts/ or the
# go command; `make help` lists them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: all
all: lint test ## Lint and test everything (what a commit must pass)

.PHONY: run
run: ## Run the whole system in one process (embedded NATS and SQLite under data/)
	go run ./services/gateway/cmd/ams dev

.PHONY: build
build: ## Build every binary into bin/
	CGO_ENABLED=0 go build -o bin/ ./services/account/cmd/account ./services/link/cmd/link ./services/gateway/cmd/gateway ./services/gateway/cmd/ams

.PHONY: test
test: ## Run every module's tests with -race (Postgres and NATS: see README)
	scripts/test.sh $(ARGS)

.PHONY: proto
proto: ## Regenerate proto/gen with buf and the pinned plugins
	scripts/generate.sh

.PHONY: checkgenerate
checkgenerate: ## Fail if proto/gen differs from what `make proto` writes
	scripts/checkgenerate.sh

.PHONY: lint
lint: ## gofmt and go vet
	scripts/lint.sh

.PHONY: bench
bench: ## Run the benchmark kit, every scenario short (ARGS="fanout" for one, full size)
	scripts/bench.sh $(ARGS)

.PHONY: bench-go
bench-go: ## Run every module's Go benchmarks (ARGS="-count=10" for benchstat)
	scripts/bench.sh go $(ARGS)

.PHONY: fuzz
fuzz: ## Fuzz every fuzz target briefly (FUZZTIME=10s each)
	scripts/fuzz.sh

.PHONY: tools
tools: ## Install the pinned tools into bin/
	scripts/tools.sh buf protoc-gen-go protoc-gen-go-grpc
