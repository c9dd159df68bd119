# flowwatch — the two commands that matter: `make run` and `make test`.
GO        ?= go
BIN       := bin/flowwatch
PKGS      := ./...
FUZZTIME  ?=
BENCHTIME ?= 1s

# The Go modules of this repository, on one release train: the collector components and what
# they need of model/ and storage/ are modules of their own (a user's collector imports them
# without the rest of flowwatch), the root module is everything else. `go test ./...` does
# not enter a nested module, so every Go step runs in each (a test in collector/distribution
# fails when a go.mod is missing here). GOWORK=off: each module's go.mod stands on its own.
MODULES   := . internal/testsvc internal/testctx model collector/flowattr storage collector/flowprocessor collector/flowexporter
# in-modules runs a command in each module, all of them even when one fails, and fails if any
# did: $(call in-modules,go vet ./...)
in-modules = failed=; for m in $(MODULES); do echo "== $$m: $(1)"; (cd $$m && GOWORK=off $(1)) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "failed in:$$failed"; exit 1; fi

# The OpenTelemetry Collector Builder, on the collector's release train, installed once into
# the project's cache folder (the OCB test of collector/distribution runs it).
OCB_VERSION := v0.165.0
OCB_DIR     := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/flowwatch/ocb/$(OCB_VERSION)
export FLOWWATCH_OCB := $(OCB_DIR)/builder

.PHONY: all build test run bench lint deps chdb ocb fuzz clean plugin plugin-deps test-plugin deploy-flows demo console console-deps test-console

all: build

## deps: install the system packages the tests need (Debian: ClickHouse 18.16, Alertmanager, docker-compose)
deps:
	bash scripts/deps.sh

## chdb: fetch libchdb.so (the embedded ClickHouse engine) once into ~/.cache/flowwatch/chdb/
chdb:
	bash scripts/chdb.sh

build: chdb
	$(GO) build -o $(BIN) ./cmd/flowwatch

## ocb: install the Collector Builder into ~/.cache/flowwatch/ocb/<version>/ once
ocb:
	@test -x $(FLOWWATCH_OCB) || GOBIN=$(OCB_DIR) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

# Tests that hold the detector to its timing targets run alone, after the rest, so that
# other packages' tests do not share the two cores with them.
TIMED     := TestStormThroughRun|TestSustainedLoadThroughRun

test: deps chdb ocb lint
	$(call in-modules,$(GO) test -count=1 -timeout 40m -skip '^($(TIMED))$$' $(PKGS))
	$(GO) test -count=1 -timeout 10m -run '^($(TIMED))$$' -v ./cmd/flowwatch/
	$(GO) test -race -count=1 ./detector/ ./flowstate/
	$(MAKE) fuzz
	$(MAKE) test-plugin
	$(MAKE) test-console

## deploy-flows: regenerate deploy/kubernetes/flows-configmap.yaml from examples/flows
deploy-flows:
	$(GO) test -count=1 -run '^TestFlowsConfigMap$$' ./deploy -update

# -fuzzminimizetime bounds the shrinking of each new interesting input: left at its default
# (60s), minimizing the first one eats the whole run and the fuzzer reports a handful of execs.
# FUZZTIME is a count of executions, not a duration: with a duration, Go 1.26's fuzzing
# coordinator may fail a target that found nothing with "context deadline exceeded" when the
# time runs out mid-execution (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline.
# Each target's count is about 10 s of it on a 2-core machine; FUZZTIME (100000x, or 5m for a
# long run, deadline race and all) overrides them all.
fuzz-one  = $(GO) test -run '^$$' -fuzztime $(or $(FUZZTIME),$(2)x) -fuzzminimizetime 1s -fuzz $(1)

fuzz:
	cd model && GOWORK=off $(call fuzz-one,FuzzParse,10000) .
	cd storage && GOWORK=off $(call fuzz-one,FuzzEventBatchUnmarshal,50000) .
	cd storage && GOWORK=off $(call fuzz-one,FuzzBinRows,50000) .
	cd storage && GOWORK=off $(call fuzz-one,FuzzAppendJSONString,80000) .
	$(call fuzz-one,FuzzAppendTime,50000) ./flowstate/

## lint: gofmt, go vet and a tidy go.mod in every module
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(call in-modules,$(GO) vet $(PKGS))
	$(call in-modules,$(GO) mod tidy -diff)

## plugin-deps: install the Grafana plugin's npm packages from package-lock.json. node_modules
## gets a go.mod so that ./... never reaches into it (some npm packages ship Go files).
plugin-deps:
	cd grafana-plugin && npm ci --no-audit --no-fund
	printf 'module ignored/node_modules\n' > grafana-plugin/node_modules/go.mod

## test-plugin: the Grafana plugin's frontend: type check, jest, build (its Go tests, over the
## plugin gRPC protocol, and the dashboard checks run in `go test ./...`)
test-plugin: plugin-deps
	cd grafana-plugin && npm run typecheck && npm run test:ci && npm run build

## plugin: build the Grafana plugin into grafana-plugin/dist (frontend and gpx_flowwatch backend)
plugin: plugin-deps
	cd grafana-plugin && npm run build
	CGO_ENABLED=0 $(GO) build -o grafana-plugin/dist/gpx_flowwatch_$$($(GO) env GOOS)_$$($(GO) env GOARCH) ./grafana-plugin/pkg

## console-deps: install the console's npm packages from package-lock.json (node_modules gets a
## go.mod, as the plugin's does)
console-deps:
	cd console/web && npm ci --no-audit --no-fund
	printf 'module ignored/node_modules\n' > console/web/node_modules/go.mod

## console: rebuild the web console into console/dist (committed: `go build` embeds it)
console: console-deps
	cd console/web && npm run typecheck && npm run build

## test-console: type check the console and fail when console/dist differs from a fresh build
## (the browser test of the console runs in `go test ./cmd/flowwatch`)
test-console: console-deps
	cd console/web && npm run typecheck && npm run check

run: build
	$(BIN) run --demo

## demo: the simulated choreography alone, against a flowwatch (or any OTLP receiver) already
## running; e.g. make demo DEMOFLAGS='--rate 20 --error-rate 0.2 --nats nats://127.0.0.1:4222'
demo: build
	$(BIN) demo $(DEMOFLAGS)

bench: chdb
	cd model && GOWORK=off $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	cd collector/flowprocessor && GOWORK=off $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) .
	cd collector/flowexporter && GOWORK=off $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) .
	cd storage && GOWORK=off $(GO) test -run '^$$' -bench 'Insert' -benchmem -benchtime $(BENCHTIME) .
	cd storage && GOWORK=off $(GO) test -run '^$$' -bench 'BytesPerEvent' -benchtime 1x .
	$(GO) test -run '^$$' -bench 'IngestPath' -benchtime 1x -count 3 -timeout 20m ./internal/ingestbench/
	INGESTBENCH_QUEUE=file $(GO) test -run '^$$' -bench 'IngestPath' -benchtime 1x -count 3 -timeout 20m ./internal/ingestbench/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./grafana-plugin/pkg/plugin/
	$(GO) test -run '^$$' -bench DemoOrders -benchtime $(BENCHTIME) ./internal/demo/
	$(GO) test -run '^$$' -bench 'Tick' -benchmem -benchtime 100x ./detector/
	$(GO) test -run '^$$' -bench 'StuckStorm|Ingest' -benchmem -benchtime 20x ./detector/
	$(GO) test -run '^$$' -bench 'Rebuild|OpenInstanceMemory|OpenFamilyMemory' -benchtime 1x -timeout 20m ./detector/
	$(GO) test -run '^$$' -bench API -benchtime $(BENCHTIME) ./api/

clean:
	rm -rf bin data
