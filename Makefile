# debuglab — the two commands a new user needs are `make lab` and `make test`.

CARGO ?= cargo
RUNS ?= 5

.PHONY: all lab test install images bench stress docs pictures isolation clean help

help:
	@echo "make lab        run every scenario's buggy and fixed variants, print a summary, write comparison pages"
	@echo "make test       run the whole test suite (builds the offline images if needed)"
	@echo "make install    put the debuglab command on your PATH (cargo install)"
	@echo "make images     build the offline PostgreSQL and Redis images from Debian packages (FORCE=1 rebuilds)"
	@echo "make bench      median time to verdict per scenario and variant (RUNS=$(RUNS))"
	@echo "make stress     every fixed variant 10 times while two busy loops compete for the CPU"
	@echo "make isolation  prove, on a scratch copy, that untouched, fixed and broken exercises leave the suite green"
	@echo "make docs       build the book (mdbook build docs) into docs/book"
	@echo "make pictures   run each scenario's comparison and screenshot it for the book (docs/src/img; needs Chromium)"
	@echo "make clean      remove debuglab containers, state and build output"

all: test

# The main job: see every bug reproduce and every fix verified.
lab:
	@bash harness/scripts/ensure-images.sh
	$(CARGO) run --quiet -p debuglab -- lab --html

# The same tests as `cargo test --workspace`, their binaries side by side.
test:
	@bash harness/scripts/ensure-images.sh
	@bash harness/scripts/ensure-browser.sh
	@CARGO=$(CARGO) bash harness/scripts/check-features.sh
	@CARGO=$(CARGO) bash harness/scripts/test.sh
	@bash harness/scripts/check-no-leftovers.sh

install:
	$(CARGO) install --locked --path harness/cli
	@command -v debuglab >/dev/null 2>&1 || echo "debuglab is installed in $${CARGO_HOME:-$$HOME/.cargo}/bin; add that directory to your PATH"

images:
	bash harness/images/build.sh $(if $(FORCE),--force)

bench:
	@bash harness/scripts/ensure-images.sh
	$(CARGO) run --quiet -p debuglab -- bench --runs $(RUNS)

stress:
	@bash harness/scripts/ensure-images.sh
	$(CARGO) run --quiet -p debuglab -- stress --runs 10 --load 2

isolation:
	@bash harness/scripts/ensure-images.sh
	bash harness/scripts/exercise-isolation.sh

docs:
	@command -v mdbook >/dev/null 2>&1 || { echo "mdbook is not installed: cargo install mdbook --locked --version '^0.4'" >&2; exit 1; }
	mdbook build docs

pictures:
	@bash harness/scripts/ensure-images.sh
	@bash harness/scripts/ensure-browser.sh
	@CARGO=$(CARGO) bash harness/scripts/pictures.sh $(ID)

clean:
	-@ids=$$(docker ps -aq --filter label=debuglab 2>/dev/null); \
	  if [ -n "$$ids" ]; then docker rm -f -v $$ids >/dev/null && echo "removed debuglab containers"; fi
	rm -rf .debuglab docs/book
	$(CARGO) clean
