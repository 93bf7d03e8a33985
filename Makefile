# runlog: crash-safe experiment tracking.
#
#   make demo    build, start a service in ./demo, log an example run, list it
#   make test    every test (Go with -race on the concurrent packages, Python)
#   make bench   benchmarks (Go testing.B and runlog bench)
#   make soak    long crash loops, not part of make test
#   make fuzz    every fuzz target for FUZZTIME each (make test runs their corpora)
#   make proto   regenerate protobuf code from pinned tool versions

GO      ?= go
PYTHON  ?= python3
BIN     := bin/runlog
VENV    := .venv
# Packages that run goroutines of their own get the race detector.
RACE_PKGS := ./wal/... ./mux/... ./sender/... ./client/... ./store/... ./hub/... ./web/... ./local/... ./loadgen/...

FUZZTIME ?= 10m

.PHONY: all build demo test test-go test-python bench soak fuzz proto clean

all: build

WEB_VENDOR := web/static/vendor/uPlot.iife.min.js web/static/vendor/uPlot.min.css

build: $(WEB_VENDOR)
	$(GO) build -o $(BIN) ./cmd/runlog

# The web UI's chart library, from the npm registry at the pinned version.
$(WEB_VENDOR) &: web/package.json web/package-lock.json
	bash scripts/web-assets.sh

demo: build $(VENV)/.installed
	PYTHON=$(CURDIR)/$(VENV)/bin/python bash scripts/demo.sh

test: test-go test-python

test-go: build $(VENV)/.installed
	bash scripts/chromium.sh
	bash scripts/postgres.sh
	$(GO) vet ./...
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(GO) test -race -timeout 10m $(RACE_PKGS)
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(GO) test -timeout 10m $(shell $(GO) list ./... | grep -v -E '/(wal|mux|sender|client|store|hub|web|local|loadgen)(/|$$)')

$(VENV)/.installed: python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ./python pytest numpy wandb==0.31.0
	touch $@

test-python: build $(VENV)/.installed
	@if [ -d python/tests ]; then \
		RUNLOG_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python -m pytest -q python/tests; \
	else echo "no python tests yet"; fi

bench: build $(VENV)/.installed
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 2s ./wal/ ./mux/
	$(GO) test -run '^$$' -bench . -benchtime 3x ./replay/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/ ./sender/
	$(GO) test -run '^$$' -bench Postgres -benchtime 1x ./store/
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench 'SyncOffline|SyncHeld|BacklogRSS' -benchtime 1x ./cmd/runlog/
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench BenchmarkReplay -benchtime 1x ./cmd/runlog/
	$(BIN) bench --root $$(mktemp -d) --runs 1 --records 1000000 --keys 10
	$(BIN) bench --root $$(mktemp -d) --runs 8 --records 250000 --keys 10
	RUNLOG_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python python/bench/bench_wandb.py --calls 100000

soak: build
	RUNLOG_BIN=$(CURDIR)/$(BIN) RUNLOG_SOAK=1 $(GO) test -timeout 60m -run 'Soak|HubsOnPostgres' -v ./cmd/runlog/
	$(GO) test -run '^$$' -fuzz '^FuzzWALFile$$' -fuzztime 10m ./wal/

fuzz:
	for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

proto:
	bash scripts/genproto.sh

clean:
	rm -rf bin demo $(VENV) .tools
