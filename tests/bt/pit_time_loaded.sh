#!/bin/sh
# The pit-time guest (PIT ticks against the ACPI PM timer) while the host is
# overloaded: busy processes, three per host CPU, compete with modvm's vCPU
# and event-loop threads, so the vCPU thread is often descheduled for
# several timer periods. A VMM that lets the event loop raise ticks the vCPU
# cannot take loses them (the guest counts fewer ticks than PM time); modvm
# holds timers for a vCPU that wants to run (core/timer.c, pacing).
# Usage: pit_time_loaded.sh MODVM GUEST_DIR
modvm=$1
dir=$2
here=$(cd "$(dirname "$0")" && pwd)
n=$(( $(nproc) * 3 ))
pids=
trap 'kill $pids 2>/dev/null' EXIT INT TERM
i=0
while [ $i -lt $n ]; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"
	i=$((i + 1))
done
echo "pit_time_loaded: $n busy processes on $(nproc) CPUs"
"$here/run_guests.sh" "$modvm" "$dir" pit-time
