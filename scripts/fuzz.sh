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
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run fuzzes target $3 of package $2 in module $1, its output also in $out.
run() {
	(cd "$1" && "$go" test -run '^$' -fuzz "^${3}\$" -fuzztime "$fuzztime" "$2") 2>&1 | tee "$out"
	return "${PIPESTATUS[0]}"
}
while IFS= read -r file; do
	dir=$(dirname "$file")
	mod=$dir
	while [ ! -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
	pkg=.
	[ "$dir" != "$mod" ] && pkg=./${dir#"$mod"/}
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "== fuzz $name in $dir for $fuzztime"
		if ! run "$mod" "$pkg" "$name"; then
			# Go 1.26's fuzz coordinator can fail a target at the end of
			# -fuzztime with a bare "context deadline exceeded" and no input
			# (go.dev/issue/75804, fixed in Go 1.27). Only that failure, with
			# no new input written, is run once more; anything else fails.
			if grep -qx '    context deadline exceeded' "$out" && [ -z "$(git status --porcelain -- "$dir/testdata/fuzz/$name")" ]; then
				echo "== fuzz $name: the coordinator's deadline race (go.dev/issue/75804), no input written; once more"
				run "$mod" "$pkg" "$name" || failed+=("$dir $name")
			else
				failed+=("$dir $name")
			fi
		fi
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}"
	exit 1
fi
