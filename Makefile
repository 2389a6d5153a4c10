# Two entry points (see README): `make play` and `make test`.
PY := .venv/bin/python
# `make play PORT=8502` serves the game on another port.
PORT ?= 8501
STAMP := .venv/.installed

.PHONY: setup play test bench clean

$(STAMP): requirements.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

play: setup
	bash scripts/play.sh --server.port $(PORT)

test: setup
	$(PY) -m pytest

clean:
	rm -rf .venv .cache
