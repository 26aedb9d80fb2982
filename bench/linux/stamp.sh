# Host-side timing of a VM's console (and the ratio of two figures), shared by the Linux benchmarks
# (boot-bench.sh, smp-bench.sh): each line is stamped with the host's wall
# clock as it arrives, so figures do not depend on the guest's clock.
# Sourced; the caller sets `limit` (seconds per run).

# run_stamped LOG CMD...: runs CMD under the time limit and writes each
# console line to LOG prefixed with the host time in seconds since start.
# Returns CMD's status (124 after the time limit).
run_stamped() {
	local log=$1 t0 rc
	shift
	t0=${EPOCHREALTIME/./}
	set +e
	# Bash arithmetic on microseconds: no process per line, so the stamps
	# keep up with a fast console.
	timeout -k 5 "$limit" "$@" </dev/null 2>&1 |
		while IFS= read -r line || [ -n "$line" ]; do
			elapsed "$t0"
			printf ' %s\n' "${line%$'\r'}"
		done >"$log"
	rc=${PIPESTATUS[0]}
	set -e
	{ elapsed "$t0"; printf ' EXIT %s\n' "$rc"; } >>"$log"
	return "$rc"
}

# elapsed T0: seconds since T0 (microseconds), as 1.234567.
elapsed() {
	local us=$((${EPOCHREALTIME/./} - $1))
	printf '%d.%06d' $((us / 1000000)) $((us % 1000000))
}

# stamp LOG REGEX: the time of the first console line matching REGEX.
stamp() {
	awk -v re="$2" '{ t = $1; sub(/^[^ ]* /, "") } $0 ~ re { printf "%.3f\n", t; exit }' "$1"
}

# ratio A B: A / B as 1.23x, or n/a when either is missing.
ratio() {
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
	else
		printf 'n/a'
	fi
}
