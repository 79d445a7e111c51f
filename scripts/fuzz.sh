#!/usr/bin/env bash
# fuzz.sh runs every native Go fuzz target of the repository (func FuzzX in
# a tracked _test.go file) for FUZZTIME each (default 10s), one after the
# other, from its own module. A failure leaves the failing input in the
# package's testdata/fuzz/FuzzX/: commit it with a name for what it caught,
# and it runs as a regression test with go test from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
go=${GO:-go}
failed=()
while IFS= read -r file; do
	dir=$(dirname "$file")
	mod=$dir
	while [ ! -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
	pkg=.
	[ "$dir" != "$mod" ] && pkg=./${dir#"$mod"/}
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "== fuzz $name in $dir for $fuzztime"
		if ! (cd "$mod" && "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"); then
			failed+=("$dir $name")
		fi
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}"
	exit 1
fi
