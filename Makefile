# flowwatch — the two commands that matter: `make run` and `make test`.
GO        ?= go
BIN       := bin/flowwatch
PKGS      := ./...
FUZZTIME  ?= 10s
BENCHTIME ?= 1s

.PHONY: all build test run bench lint deps chdb fuzz clean

all: build

## deps: install the system packages the tests need (Debian: ClickHouse 18.16, Alertmanager, docker-compose)
deps:
	bash scripts/deps.sh

## chdb: fetch libchdb.so (the embedded ClickHouse engine) once into ~/.cache/flowwatch/chdb/
chdb:
	bash scripts/chdb.sh

build: chdb
	$(GO) build -o $(BIN) ./cmd/flowwatch

test: deps chdb lint
	$(GO) test -count=1 -timeout 40m $(PKGS)
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./model

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

run: build
	$(BIN) run --demo

bench: chdb
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./model/...

clean:
	rm -rf bin data
