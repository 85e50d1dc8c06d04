# Both quick-start targets set themselves up in .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench check-systemd clean sparkplug-descriptor

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/lineside demo

test: $(STAMP)
	@sh scripts/ensure-mosquitto.sh
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lineside tests bench
	$(VENV)/bin/mypy

check-systemd: $(STAMP)
	sh scripts/check-systemd.sh

# Figures beside the physical limits of the same run; writes bench/results.md (~15 min).
bench: $(STAMP)
	@sh scripts/ensure-mosquitto.sh
	$(PY) bench/run_all.py $(BENCH_ARGS)

# The agent's memory over 30 minutes (not part of bench): make soak SOAK_ARGS="--minutes 3 --warmup 1"
.PHONY: soak
soak: $(STAMP)
	@sh scripts/ensure-mosquitto.sh
	$(PY) bench/soak.py $(SOAK_ARGS)

# The Sparkplug payload descriptor, from Tahu's .proto (needs protoc: apt-get install protobuf-compiler).
SPB := lineside/agent/sparkplug/vendor
sparkplug-descriptor: $(STAMP)
	protoc --descriptor_set_out=/dev/stdout -I $(SPB) $(SPB)/sparkplug_b.proto \
		| $(PY) -m lineside.agent.sparkplug.codec > $(SPB)/sparkplug_b.txtpb

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
