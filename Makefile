# The two commands the README opens with. Both install what they need first (as root).
.PHONY: setup run test lint sanity unit bench changelog

setup:
	bash scripts/setup.sh

# A real provisioning run of a local workspace (./.run) with the local defaults; no internet.
run: setup
	bash scripts/run-local.sh

# Every test: quality gates, pytest (unit + integration with real servers and containers),
# molecule scenarios.
test: setup
	bash scripts/test.sh

lint: setup
	bash scripts/test.sh lint

sanity: setup
	bash scripts/sanity.sh

bench: setup
	bash bench/run.sh

# CHANGELOG.md from changelogs/fragments/ (docs/DEVELOPING.md: how a change adds a fragment).
changelog: setup
	bash scripts/changelog.sh
