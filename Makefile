# hexsieve: two commands do everything on a fresh machine (Python 3.11+, git, make).
#   make demo   creates .venv if missing, runs the pipelines on sample_data/, shows results
#   make test   creates .venv if missing, runs the whole test suite
#   make bench  benchmarks (not part of make test)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HX     := $(VENV)/bin/hexsieve
DEMO   ?= demo_out
NOW    := 2026-11-21T00:00:00Z

.PHONY: demo test bench clean env

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hexsieve needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

demo: env
	@rm -rf $(DEMO)
	@echo "== witness reports (sample_data/witness) =="
	@$(HX) batch witness --beacons 'sample_data/witness/beacons-*.jsonl.gz' \
	    --witnesses 'sample_data/witness/witnesses-*.jsonl' --registry sample_data/witness/registry.csv \
	    --denylist sample_data/witness/denylist.csv --entropy sample_data/witness/entropy.jsonl \
	    --out $(DEMO) --now $(NOW)
	@echo "== DuckDB: valid-witness rate per region =="
	@$(PY) -c "import duckdb; duckdb.sql(\"SELECT region_of_witness, count(*) AS witnesses, round(avg((verdict = 'valid')::INT), 3) AS valid_rate FROM (SELECT CASE WHEN frequency > 900000000 THEN 'US915' ELSE 'EU868' END AS region_of_witness, verdict FROM read_parquet('$(DEMO)/witness/*/*.parquet', hive_partitioning = true)) GROUP BY ALL ORDER BY 1\").show()"
	@echo "== weather-station packets (sample_data/sensor) =="
	@$(HX) batch sensor --readings 'sample_data/sensor/readings-*' --stations sample_data/sensor/stations.csv \
	    --out $(DEMO)/sensor_run --now $(NOW)
	@echo "== DuckDB: daily QoD / PoL per station, 2026-11-20 =="
	@$(PY) -c "import duckdb; duckdb.sql(\"SELECT station_id, model, round(qod_score, 3) AS qod, pol_score AS pol, pol_flags, verdict FROM read_parquet('$(DEMO)/sensor_run/sensor_daily/*/*.parquet', hive_partitioning = true) WHERE date = '2026-11-20' ORDER BY 1\").show(max_width=200)"

test: env
	@$(PY) -m pytest

bench: env
	@$(PY) benchmarks/bench_witness.py

clean:
	rm -rf $(DEMO) bench_out .pytest_cache
