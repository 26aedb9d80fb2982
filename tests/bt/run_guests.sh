#!/bin/sh
# Runs every test guest under the cpu-bt engine through `modvm run` and
# checks that it printed "<name>: PASS" and powered off (exit status 0).
# Usage: run_guests.sh MODVM GUEST_DIR [guest...]
# Guests whose devices are missing from the build are reported as SKIP.
# BT_MODE=translate|interpret in the environment sets the engine's `mode`
# (unset: the engine's default, translate). CPUS=N gives the VM N vCPUs
# (default 1); a guest that prints "<name>: cpus=M" must have seen M = N.
modvm=$1
dir=$2
shift 2
guests=${*:-"hello modes pit-pic pit-time clock-gap rtc pci-scan mmio counter compute compute32 pit-ioapic"}
plugins=$(dirname "$modvm")/plugins
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
case ${BT_MODE:-} in
"") mode= ;;
translate|interpret) mode=" mode = \"$BT_MODE\";" ;;
*) echo "FAIL: BT_MODE=$BT_MODE (translate or interpret)"; exit 1 ;;
esac

for g in $guests; do
	devices='{ plugin = "serial-16550"; id = "com1"; backend = "file"; path = "'$tmp/$g.out'"; append = false; },
    { plugin = "acpi-pm"; id = "pm"; }, { plugin = "pic-8259"; id = "pic"; },
    { plugin = "pit-8254"; id = "pit"; }, { plugin = "rtc-cmos"; id = "rtc"; },
    { plugin = "pci-host"; id = "pci"; }, { plugin = "sysctl-92"; id = "sysctl"; }'
	if [ "$g" = pit-ioapic ]; then
		devices="$devices, { plugin = \"ioapic\"; id = \"ioapic\"; }"
	fi
	cat > "$tmp/$g.cfg" <<CFG
vm: {
  name = "$g"; memory = "16M"; cpus = ${CPUS:-1}; machine = "none";
  cpu = { engine = "cpu-bt"; model = "baseline-v1";$mode };
  boot = { kernel = "$dir/$g.bin"; };
  devices = ( $devices );
};
CFG
	start=$(date +%s)
	timeout 600 "$modvm" run "$tmp/$g.cfg" > "$tmp/$g.log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if grep -q "refused plugin\|no device plugin" "$tmp/$g.log"; then
		echo "SKIP $g: $(grep -m1 'refused plugin\|no device plugin' "$tmp/$g.log")"
	elif grep -q "^$g: cpus=" "$tmp/$g.out" &&
	     ! grep -q "^$g: cpus=${CPUS:-1} " "$tmp/$g.out"; then
		echo "FAIL $g: $(grep -m1 "^$g: cpus=" "$tmp/$g.out") with cpus = ${CPUS:-1} in the config"
		fail=1
	elif [ $rc -eq 0 ] && grep -q "^$g: PASS" "$tmp/$g.out"; then
		echo "PASS $g (${secs}s)${BT_MODE:+ mode=$BT_MODE}"
	else
		echo "FAIL $g (exit $rc)"
		tail -5 "$tmp/$g.out" "$tmp/$g.log" 2>/dev/null | sed 's/^/    /'
		fail=1
	fi
done
exit $fail
