# The two commands a newcomer needs: `make run` and `make test`. Both bootstrap .venv.
.PHONY: run test bootstrap lint typecheck protos bench-emulator clean

VENV := .venv
PY := $(VENV)/bin/python

bootstrap:
	@scripts/bootstrap.sh

run: bootstrap
	$(VENV)/bin/aicollect run

test: bootstrap
	@scripts/test.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	$(VENV)/bin/mypy .

protos: bootstrap
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
