#!/bin/sh
# The clock-gap guest (largest step of PM time between two reads in a row)
# with modvm and three busy processes pinned to one host CPU, so the vCPU
# thread waits on the run queue for several milliseconds again and again.
# A VMM whose guest time follows host time shows those waits as jumps of
# guest time (and a Linux guest drops the ticks they jump over); modvm
# takes them out of virtual time (core/timer.c, steal_check). Exits 77 when
# the host kernel does not count run-queue waits (no /proc/PID/schedstat).
# Usage: clock_gap_loaded.sh MODVM GUEST_DIR
modvm=$1
dir=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -r /proc/self/schedstat ]; then
	echo "SKIP: this kernel has no /proc/PID/schedstat (CONFIG_SCHED_INFO)"
	exit 77
fi
cpu=$(taskset -pc $$ | sed 's/.*: *//; s/[,-].*//')
pids=
trap 'kill $pids 2>/dev/null' EXIT INT TERM
for i in 1 2 3; do
	taskset -c "$cpu" sh -c 'while :; do :; done' &
	pids="$pids $!"
done
echo "clock_gap_loaded: modvm and 3 busy processes on host CPU $cpu"
taskset -c "$cpu" "$here/run_guests.sh" "$modvm" "$dir" clock-gap
