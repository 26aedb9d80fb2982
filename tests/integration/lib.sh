# Shared helpers for the shell integration tests (sourced, not run).
# The caller sets $modvm; checks and failures are counted here and
# summarize prints the closing "N passed, N failed" line.
checks=0
failures=0

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

check() { # check DESCRIPTION COMMAND...: the command succeeds
	local what=$1
	shift
	checks=$((checks + 1))
	"$@" || fail "$what"
}

# expect_code WANT CMD...: run, keep output in $out, check the exit code.
expect_code() {
	local want=$1
	shift
	checks=$((checks + 1))
	out=$("$@" 2>&1)
	local got=$?
	if [ "$got" != "$want" ]; then
		fail "'$*' exited $got, expected $want; output:"
		echo "$out" | sed 's/^/    /'
	fi
}

# expect_fail MESSAGE CMD...: the command fails, saying MESSAGE.
expect_fail() {
	local msg=$1
	shift
	checks=$((checks + 1))
	out=$("$@" 2>&1)
	local got=$?
	if [ "$got" = 0 ] || ! grep -qF -- "$msg" <<<"$out"; then
		fail "'$*' exited $got, expected a failure saying \"$msg\"; output:"
		echo "$out" | sed 's/^/    /'
	fi
}

# expect_out TEXT: the last output contains TEXT (fixed string).
expect_out() {
	checks=$((checks + 1))
	if ! grep -qF -- "$1" <<<"$out"; then
		fail "expected output to contain: $1"
		echo "$out" | sed 's/^/    /'
	fi
}

# wait_running SOCKET: the control socket answers and the vCPUs run.
wait_running() {
	for _ in $(seq 100); do
		"$modvm" ctl "$1" status 2>/dev/null | grep -q '"status": "running"' && return 0
		sleep 0.05
	done
	fail "VM behind $1 never reached running"
}

summarize() {
	echo "$((checks - failures)) passed, $failures failed"
	[ "$failures" = 0 ]
}
