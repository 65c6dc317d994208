# Developer entry points. `make demo` and `make test` are the whole set-up on a fresh
# Debian/Ubuntu machine (run as root: the test bed uses network namespaces).
.PHONY: setup demo test lint sanity unit integration realclients molecule fuel clean

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

lint: setup
	bash scripts/test.sh lint

sanity: setup
	bash scripts/sanity.sh

unit: setup
	bash scripts/test.sh unit

integration: setup
	bash scripts/test.sh integration

realclients: setup
	bash scripts/test.sh realclients

molecule: setup
	bash scripts/test.sh molecule

fuel: setup
	.venv/bin/python fuel/build.py --rpm

clean:
	-[ -x .venv/bin/python ] && .venv/bin/python tests/bed/bed.py down
	rm -rf .build .venv tests/output
