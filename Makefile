# Almanac. `make run` and `make test` are the two commands the README opens with.
SWIFT ?= swift
BIN := .build/debug

.PHONY: deps build run run-chain test unit test-console bench-router bench-ingest bench-pipeline bench-api bench-m4 bench-m1 bench-deep bench-deep-gpu clean

deps:
	@infra/local/install-deps.sh

build: deps
	$(SWIFT) build

# The main job on the embedded default: Postgres, the Kafka mock cluster, the router,
# the launcher and the ingress with the forecasting pipeline's functions; a sample of M4
# Hourly goes through ingest, train, forecast, export and a signed webhook, then later
# actuals through the monitor.
run: build
	infra/local/demo.sh

# The runtime alone: a CloudEvent through a chain of two Python functions (examples/chain).
run-chain: build
	infra/local/chain-demo.sh

# Every test: unit tests, and integration tests against a real Postgres (started by the
# fixture) and librdkafka's mock cluster, with real function processes.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	cd python && JAX_PLATFORMS=cpu python3 -m unittest discover -s tests -v

# The console in a real browser (chromium through Selenium) against `almanac up`; screenshots of
# every page land in .test-output/console/ (part of `make test` too).
test-console: deps
	$(SWIFT) build
	cd python && python3 -m unittest tests.test_console -v

unit: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter 'AlmanacCoreTests|AlmanacFunctionsTests|LaunchPlannerTests|PipelineEventTests'

# Benchmarks run an optimised build; the last line printed is JSON.
bench-router: deps
	$(SWIFT) build -c release --product almanac
	.build/release/almanac bench router

# Ingest next to psql \copy of the same file, and the whole chain (data arrival → webhook),
# both on M4 Hourly; the last line of each is JSON.
M4 ?= ../shared/data/m4
bench-ingest: deps
	$(SWIFT) build -c release --product almanac
	.build/release/almanac bench ingest --file $(M4)/hourly-train.csv

bench-pipeline: deps
	$(SWIFT) build -c release
	.build/release/almanac bench pipeline --file $(M4)/hourly-train.csv --horizon 48 --frequency hourly

# The /v1 forecast query for one item of M4 Hourly's 414 (h 48), next to psql; the last line is JSON.
bench-api: deps
	$(SWIFT) build -c release --product almanac
	.build/release/almanac bench api --file $(M4)/hourly-train.csv --horizon 48

# The forecasting library on M4 Hourly and Weekly, scored by ../shared/tools/m4_score.py.
bench-m4: deps
	infra/local/bench-m4.sh

# The deep global model alone and as champion with the statistical AutoML, M4 Hourly and
# Weekly, scored by ../shared/tools/m4_score.py next to AutoML alone.
# M1 yearly, quarterly and monthly through almanac forecast next to statsforecast's AutoETS,
# AutoARIMA, AutoTheta and their mean (a benchmark-only venv, .build-bench/); the last line is JSON.
bench-m1: deps
	infra/local/bench-m1.sh

bench-deep: deps
	BENCH_MODELS="auto deep champion" infra/local/bench-m4.sh

# The same deep training on the GPU and the CPU (needs JAX with CUDA for the GPU side).
bench-deep-gpu: deps
	infra/local/deep-gpu-vs-cpu.sh

clean:
	rm -rf .build .almanac
