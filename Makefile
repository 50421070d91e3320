# make run   fresh machine: creates .venv, installs, runs the quick workflow, builds the report
# make test  fresh machine: creates .venv if needed, runs the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed

.PHONY: run test install readme bench clean

install: $(STAMP)

# Reinstall when the dependency pins change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing weightspace and its pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[test]' > $(VENV)/install.log 2>&1 || \
		{ grep -v "^WARNING: Location" $(VENV)/install.log | tail -40; exit 1; }
	$(BIN)/python -c "import torch, torchvision, snakemake, weightspace"
	@touch $(STAMP)

run: install
	$(BIN)/snakemake --workflow-profile profiles/local --cores $(CORES) all report archive

test: install
	$(BIN)/python -m pytest

# Regenerate the README target table; with results/quick present, take its reproduced claims.
readme: install
	$(BIN)/python -m weightspace.pipeline.registry $(if $(wildcard results/quick),--claims results/quick)

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .snakemake results
