#!/bin/bash
# Run one test guest under QEMU (TCG, software emulation) as an outside
# reference and print its serial output. Builds nothing; QEMU is never part
# of modvm.
#
# usage: run-qemu.sh [-t SECONDS] [-M MACHINE] GUEST [QEMU ARGS...]
#   GUEST    a path to <name>.bin, or a bare name looked up in
#            $MODVM_GUEST_DIR (default: build/tests/guests of this checkout)
#   -t       timeout in seconds (default 60)
#   -M       QEMU machine type (default pc; q35 works too)
#   $QEMU    the QEMU binary (default qemu-system-x86_64)
#
# Exit status: 0 when the guest printed exactly one "<name>: start", its
# last two lines are "<name>: PASS" and "POWEROFF", and QEMU stopped by
# itself (the ACPI power-off); 124 on timeout; 1 otherwise. There is no
# -no-reboot: a guest that triple-faults reboots and runs into the timeout
# rather than passing for one that powered off.
set -u

usage() {
	echo "usage: $0 [-t SECONDS] [-M MACHINE] GUEST [QEMU ARGS...]" >&2
	exit 2
}

timeout_s=60
machine=pc
while getopts t:M: opt; do
	case $opt in
	t) timeout_s=$OPTARG ;;
	M) machine=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
guest=$1
shift

if [ ! -f "$guest" ]; then
	here=$(cd "$(dirname "$0")" && pwd)
	dir=${MODVM_GUEST_DIR:-$here/../../build/tests/guests}
	guest=$dir/${guest%.bin}.bin
fi
if [ ! -f "$guest" ]; then
	echo "$0: no guest image $guest (build the test-guests target first)" >&2
	exit 2
fi
name=$(basename "$guest" .bin)

out=$(mktemp)
trap 'rm -f "$out"' EXIT

timeout "$timeout_s" "${QEMU:-qemu-system-x86_64}" -accel tcg \
	-machine "$machine" -m 64 -display none -monitor none -serial stdio \
	-kernel "$guest" "$@" </dev/null | tee "$out"
status=${PIPESTATUS[0]}

if [ "$status" -eq 124 ]; then
	echo "$0: $name: timed out after ${timeout_s}s" >&2
	exit 124
fi
if [ "$status" -ne 0 ]; then
	echo "$0: $name: QEMU exited with status $status" >&2
	exit 1
fi
starts=$(grep -c -x "$name: start" "$out")
last=$(tail -n 2 "$out" | tr '\n' '|')
if [ "$starts" -ne 1 ] || [ "$last" != "$name: PASS|POWEROFF|" ]; then
	echo "$0: $name: did not end with PASS and POWEROFF" >&2
	exit 1
fi
exit 0
