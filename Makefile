# kafka-edge developer commands. `make setup` once, then `make test`, `make demo`, `make bench`.
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup test unit e2e lint deadcode typecheck check demo bench chaos image deploy-files clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m ruff check src tests testbed scripts bench deploy fuzz reliability
	$(PY) scripts/deadcode.py
	$(PY) -m mypy
	$(PY) -m pytest tests

unit: setup
	$(PY) -m pytest tests/unit

e2e: setup
	$(PY) -m pytest tests/e2e

lint:
	$(PY) -m ruff check src tests testbed scripts bench deploy fuzz reliability
	$(PY) scripts/deadcode.py

deadcode:  # vulture over src/ and testbed/; false positives in scripts/deadcode_whitelist.py
	$(PY) scripts/deadcode.py

typecheck:
	$(PY) -m mypy

demo: setup
	$(PY) scripts/demo.py

bench: setup  # about 55 minutes; BENCH_ARGS="--rounds 3" or "--quick" for less
	$(PY) bench/run.py $(BENCH_ARGS)

# the long reliability suite (docs/reliability.md): 1,000,000 fuzz executions, the fault scenarios
# with 100,000 records each, the bad-input matrix, memory under churn and 10 minutes of mixed
# load; results in reliability/results/latest.json and docs/reliability.md
CHAOS_PARTS := reliability/results/parts
chaos: setup
	rm -rf $(CHAOS_PARTS)
	$(PY) reliability/collect.py --start $(CHAOS_PARTS)
	$(PY) -m fuzz.run --chaos --work $(CHAOS_PARTS)/fuzz-work --json $(CHAOS_PARTS)/fuzz.json
	KAFKA_EDGE_CHAOS=1 KAFKA_EDGE_RESULTS_DIR=$(CHAOS_PARTS) $(PY) -m pytest tests/chaos tests/e2e/test_faults.py \
		tests/e2e/test_bad_input_matrix.py tests/e2e/test_tls_churn_memory.py \
		tests/e2e/test_idle_memory.py tests/e2e/test_stalled_consumer_memory.py; \
		status=$$?; $(PY) reliability/collect.py $(CHAOS_PARTS); exit $$status

image: setup  # localhost/kafka-edge:dev with podman, on a Debian bookworm base made locally
	$(PY) -m testbed.image

# deploy/aws/*.template.json (the CDK app, synthesized: needs Node.js) and
# deploy/grafana/kafka-edge.json, made again from their sources; make test checks they are current
deploy-files: setup
	cd deploy/aws && ../../$(PY) -m kafka_edge_cdk.synth --write
	$(PY) deploy/grafana/kafka_edge_dashboard.py --write

clean:
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
