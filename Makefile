# Rampart: `make demo` runs the whole pipeline end to end, `make test` runs
# every test against real NATS JetStream and ClickHouse. Both install what
# they need first.
SHELL := /bin/bash
export CHDB_LIB_PATH ?= $(CURDIR)/.cache/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so
# Modules of the workspace, from go.work.
MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')

.PHONY: deps build demo test vet bench bench-forensic load soak dashboards

deps:
	@scripts/deps.sh test

build:
	go build -o bin/rampart ./cmd/rampart
	go build -o bin/rampart-enforcer ./enforcer/cmd/rampart-enforcer

# Grafana provisioning (datasources, dashboards, alert rules) from
# dashboards/build; make test checks the committed files are its output.
dashboards:
	go run ./dashboards/cmd/gendashboards -out dashboards/provisioning

demo: build
	@scripts/deps.sh demo
	bin/rampart demo

# staticcheck from the Go module proxy, pinned; go.mod and go.sum tidy in every module.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./... && go run $(STATICCHECK) ./... && \
		{ go mod tidy -diff >/dev/null || { echo "$$m: go.mod or go.sum not tidy (go mod tidy)"; exit 1; }; }) || exit 1; done
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); exit 1; }
	@# The enforcer stays light: no ClickHouse client in its build.
	@! (cd enforcer && go list -deps -test ./... | grep -i clickhouse) || { echo "enforcer links a ClickHouse client"; exit 1; }

# Tests that need ClickHouse or NATS fail, never skip, here.
test: deps vet
	@for m in $(MODULES); do echo "== $$m"; (cd $$m && RAMPART_REQUIRE_SERVERS=1 go test -count=1 -timeout 20m ./...) || exit 1; done

bench:
	cd schema && go test -run '^$$' -bench . -benchmem ./event/ ./chain/
	cd enforcer && go test -run '^$$' -bench . -benchmem ./...

# The forensic questions on 10M generated events, on ClickHouse 18.16 and
# chDB: rows read and p50/p99, now and through the old FINAL views; then
# every `investigate` verb, chain check included, on both engines
# (BenchmarkVerbs; about 30 min on 2 cores in all). EVENTS=100000000 for the 100M measurement;
# FORENSIC_FLAGS for more, e.g. "-engines clickhouse-18 -runs 10 -baseline=false"
# or "-generate-only" (the generator's events/s alone).
EVENTS ?= 10000000
FORENSIC_FLAGS ?=
bench-forensic: deps
	cd loadtest && go run ./cmd/rampart-forensic -events $(EVENTS) $(FORENSIC_FLAGS)
	RAMPART_REQUIRE_SERVERS=1 RAMPART_BENCH_EVENTS=$(EVENTS) go test -run '^$$' -bench Verbs -benchtime 10x -timeout 60m ./internal/investigate/

# Fixed-rate (three rounds) and saturation load: enforcer vs a bare proxy vs OPA (~13 min).
load: build
	go run ./loadtest/cmd/rampart-load -enforcer bin/rampart-enforcer

# The fault-injection suite with 30 s outages.
soak: deps
	RAMPART_SOAK=1 RAMPART_REQUIRE_SERVERS=1 go test -count=1 -timeout 60m -v ./internal/faults/
