# Two entry points a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ssddl simulate --out runs/demo --force  # a second demo moves the first aside

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# the full suite (what CI runs): three workers on two cores (the process tests mostly wait on
# Flower and Ray), the Flower and Ray process tests one after another in one of them; mypy
# (half a minute of one core on a fresh clone) runs beside the tests, its output printed after
# theirs, and either one failing fails the target
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -q -n 3 --dist loadgroup --no-loadscope-reorder --durations=15; tests=$$?; \
	wait $$mypy; types=$$?; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 -a $$types -eq 0

# the quick tier for the edit loop: no slow end-to-end runs, no Flower or Ray processes
check: $(STAMP) lint
	HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -q -n 2 -m "not slow and not flower"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .hypothesis
