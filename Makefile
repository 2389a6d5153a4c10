# Two entry points (see README): `make play` and `make test`.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup play test bench clean

$(STAMP): requirements.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

play: setup
	bash scripts/play.sh

test: setup
	$(PY) -m pytest

clean:
	rm -rf .venv .cache
