#!/usr/bin/env bash
# Runs every native Go fuzz target of the module (func FuzzXxx in a
# *_test.go file), one after another, each for a bounded time, and fails on
# the first failure. Targets are found by grepping the test files, so new
# ones are picked up without editing this script. The seed corpora
# (testdata/fuzz) already run as plain tests under `go test ./...`; this
# explores beyond them.
#
# Environment:
#   FUZZTIME      how long each target fuzzes (go test -fuzztime); default 10s
#   FUZZMINTIME   time to minimize a failing or new input (-fuzzminimizetime);
#                 default 5s, so that a target cannot overrun its slot by
#                 the default minute
#   FUZZPKGS      packages to search (go list patterns); default ./...
#   FUZZPARALLEL  fuzzing workers per target (-parallel); default: GOMAXPROCS
#
# A failing input is written by go test to the package's testdata/fuzz/<Target>/;
# commit it with the fix as a regression test.
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# failure when a duration -fuzztime ends while a worker is mid-call
# (go.dev/issue/75804, fixed in Go 1.27): no input is written and nothing
# reproduces. Such a run (non-zero exit, that message, no "Failing input
# written", no new file in the target's corpus directory) is retried once;
# if the retry ends the same way it is reported as a toolchain flake and the
# run goes on. Any other failure fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-10s}
FUZZMINTIME=${FUZZMINTIME:-5s}
FUZZPKGS=${FUZZPKGS:-./...}
parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi

# Every package directory with its import path, then every fuzz target
# declared in its test files. A target in a file behind a build tag is
# found too, but go test (without the tag) has nothing to fuzz: it is
# reported as skipped.
targets=()
while IFS=' ' read -r dir pkg; do
	while IFS= read -r name; do
		targets+=("$pkg $name")
	done < <(grep -h -o '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go 2>/dev/null | sed 's/^func //; s/($//' | sort -u)
done < <(go list -e -f '{{.Dir}} {{.ImportPath}}' $FUZZPKGS) # word splitting: several patterns

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found in $FUZZPKGS"
	exit 0
fi

started=$(date +%s)
ran=0
skipped=()
flaked=()
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	printf -- '--- fuzz %s %s (%s)\n' "$pkg" "$name" "$FUZZTIME"
	corpus="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
	attempt=1
	while :; do
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" \
			-fuzzminimizetime "$FUZZMINTIME" "${parallel[@]}" "$pkg" 2>&1); then
			break
		fi
		after=$(ls "$corpus" 2>/dev/null | sort || true)
		if [ "$before" = "$after" ] && grep -q 'context deadline exceeded' <<<"$out" &&
			! grep -q -e 'Failing input written' -e 'panic:' <<<"$out"; then
			if [ $attempt -eq 1 ]; then
				echo "fuzz: $name ended with a bare 'context deadline exceeded' and wrote no input (go.dev/issue/75804); retrying once"
				attempt=2
				continue
			fi
			printf '%s\n' "$out" | tail -n 4
			echo "fuzz: WARN $name hit the toolchain's fuzztime deadline race twice; no input was found or written"
			flaked+=("$pkg $name")
			break
		fi
		printf '%s\n' "$out"
		new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed "s|^|$corpus/|")
		echo "fuzz: FAIL $pkg $name after $ran of ${#targets[@]} targets passed ($(($(date +%s) - started))s)"
		if [ -n "$new" ]; then
			echo "fuzz: the failing input was written to:"; printf '  %s\n' $new
		fi
		exit 1
	done
	if grep -q 'no fuzz tests to fuzz' <<<"$out"; then
		echo "fuzz: SKIP $pkg $name: declared but not built without a build tag"
		skipped+=("$pkg $name")
		continue
	fi
	printf '%s\n' "$out" | tail -n 3
	ran=$((ran + 1))
done
echo "fuzz: ok, ${ran} targets (${#skipped[@]} skipped, ${#flaked[@]} toolchain deadline flakes) in $(printf '%s\n' "${targets[@]}" | cut -d' ' -f1 | sort -u | wc -l) packages, ${FUZZTIME} each, $(($(date +%s) - started))s"
