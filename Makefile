# The README's two commands are `make demo` and `make test`; the rest serve them.
SHELL := /bin/bash
RID ?= linux-x64

.PHONY: all deps build publish test test-faults fuzz demo package install bench clean

all: build

deps:
	build/deps.sh

build:
	dotnet build AppModule.sln -nologo

publish:
	build/publish.sh $(RID)

test: deps
	build/with-engine.sh build/test.sh

# The fault-injection matrix (slow; see build/test-faults.sh). CI runs it after `make test`.
test-faults: deps
	build/with-engine.sh build/test-faults.sh

# Open-ended fuzzing, outside make test's pass/fail: every property test (Category=Fuzz) runs its fixed cases and
# regression seeds as in make test, then explores new inputs for FUZZ_SECONDS each; a failure prints the CsCheck
# seed to reproduce it, which then goes into the test's regressions (tests/TestSupport/Fuzz.cs).
FUZZ_SECONDS ?= 60
fuzz: deps
	dotnet build tests/Hardening.Tests -nologo -v:q -clp:NoSummary
	dotnet build tests/Delta.Tests -nologo -v:q -clp:NoSummary
	FUZZ_SECONDS=$(FUZZ_SECONDS) dotnet test tests/Hardening.Tests --no-build --filter Category=Fuzz --logger "console;verbosity=normal"
	FUZZ_SECONDS=$(FUZZ_SECONDS) dotnet test tests/Delta.Tests --no-build --filter Category=Fuzz --logger "console;verbosity=normal"

demo: deps
	build/with-engine.sh build/demo.sh

# .deb packages for linux-x64 and linux-arm64 into out/packages/ (see README, Packaging).
package: deps
	build/publish.sh linux-x64
	build/publish.sh linux-arm64
	packaging/build-debs.sh linux-x64
	packaging/build-debs.sh linux-arm64

# The device layout into $(DESTDIR) (e.g. a Yocto image root), from out/$(RID).
install:
	@test -n "$(DESTDIR)" || { echo "make install needs DESTDIR=<root>" >&2; exit 2; }
	@test -x out/$(RID)/app || build/publish.sh $(RID)
	packaging/layout.sh out/$(RID) $(DESTDIR)

# Install cost against the raw tools, measured in one run; writes bench/results/ and README's table.
bench: deps
	build/with-engine.sh bench/run.sh

clean:
	rm -rf out
	find . -name bin -o -name obj -type d -prune -exec rm -rf {} +

# Fleet benchmark: 10,000 simulated apps reporting over a real redis-server, registry checks against a real
# docker-registry; prints version reports handled per second and the p99 decision latency, for one updater and for
# two sharing the consumer group.
.PHONY: bench-fleet
bench-fleet:
	build/with-engine.sh bash -c 'build/test-images.sh && dotnet build -c Release bench/fleet -nologo -v:q && \
	  dotnet run -c Release --no-build --project bench/fleet -- --apps 10000 --updaters 1 && \
	  dotnet run -c Release --no-build --project bench/fleet -- --apps 10000 --updaters 2'
