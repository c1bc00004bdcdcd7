# The README's two commands.
.PHONY: run test

run:  ## set everything up and run the console on the embedded default
	bash scripts/quickstart.sh

test:  ## run the whole test suite on real PostgreSQL, Redis, Celery and Chromium
	bash scripts/test.sh
