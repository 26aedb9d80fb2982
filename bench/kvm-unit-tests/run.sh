#!/bin/bash
# kvm-unit-tests' x86 suite under modvm and, for comparison, under QEMU TCG.
# Takes a kvm-unit-tests tree the user configured and built as its README
# says (modvm neither ships, patches nor builds the suite), reads
# x86/unittests.cfg and runs every entry once under modvm (engine cpu-bt
# unless -e) and once under qemu-system-x86_64 -accel tcg, deciding PASS,
# FAIL or SKIP the way the suite's run_tests.sh does:
#   - arch, nodefault, accel, check and a missing .flat skip both sides;
#   - the kernel ends the VM through isa-debug-exit: exit(code) writes code
#     to port 0xf4 and the VMM exits with (code << 1) | 1, so status 1 is
#     PASS, 77 SKIP (report_summary when every test skipped), 124 a
#     timeout, 0 (no debug exit) and anything else FAIL; a status of 1 with
#     error messages on stderr is the VMM failing, not the test passing
#     (scripts/vmm.bash qemu_fixup_return_code, scripts/runtime.bash run);
#   - smp, test_args (the multiboot command line, after the kernel's path
#     as QEMU gives it), -m and -cpu are mapped to a modvm config; an entry
#     that needs what modvm lacks (a feature no CPU model has, an Intel
#     vendor, Hyper-V, other devices, KVM) is a modvm SKIP saying why;
#   - QEMU gets the entry's qemu_params unchanged; options it refuses make
#     a QEMU SKIP, as run_tests.sh's premature-failure probe does.
# Prints one line per entry (modvm result, QEMU result, reasons) and the
# counts; every log stays in the output folder.
#
# usage: bench/kvm-unit-tests/run.sh [options] KUT_DIR
#   -b BUILD_DIR   holds modvm and its plugins (default: build)
#   -e ENGINE      modvm CPU engine (default cpu-bt)
#   -p NAME=VALUE  engine property (repeatable), e.g. -p mode=interpret
#   -m MODEL       use this CPU model for every entry instead of mapping -cpu
#   -f             run entries asking for CPU features no model has without
#                  them (as QEMU TCG drops what it lacks, with a warning)
#                  instead of skipping them; the reasons say what was dropped
#   -t SECONDS     timeout of every test instead of the entry's (default 90)
#   -x FACTOR      multiply every timeout (both sides) by FACTOR (default 1)
#   -o DIR         where configs, consoles and logs go (default: a new
#                  folder under /tmp, printed at the end)
#   -s NAME,...    run only these entries
#   --no-qemu      modvm only        --no-modvm   QEMU only
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/build
engine='cpu-bt'
eprops=()
force_model=
drop_features=0
t_override=
factor=1
out=
only=
do_qemu=1
do_modvm=1
while [ $# -gt 0 ]; do
	case "$1" in
	-b) build=$2; shift 2 ;;
	-e) engine=$2; shift 2 ;;
	-p) eprops+=("$2"); shift 2 ;;
	-m) force_model=$2; shift 2 ;;
	-f) drop_features=1; shift ;;
	-t) t_override=$2; shift 2 ;;
	-x) factor=$2; shift 2 ;;
	-o) out=$2; shift 2 ;;
	-s) only=",$2,"; shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--no-modvm) do_modvm=0; shift ;;
	-h | --help) sed -n '24,37p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	-*) echo "kvm-unit-tests: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { sed -n '24,37p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
kut=$(cd "$1" 2>/dev/null && pwd) || { echo "kvm-unit-tests: no folder $1" >&2; exit 2; }
cfgfile=$kut/x86/unittests.cfg
[ -f "$cfgfile" ] || { echo "kvm-unit-tests: no $cfgfile: give the top of a kvm-unit-tests tree" >&2; exit 2; }
[ -f "$kut/config.mak" ] || { echo "kvm-unit-tests: $kut is not configured and built: build it as its README says" >&2; exit 2; }
if grep -q '^CONFIG_EFI=y' "$kut/config.mak"; then
	echo "kvm-unit-tests: $kut is configured for EFI; modvm boots the multiboot .flat tests: build it without EFI" >&2
	exit 2
fi
if ! grep -q '^ARCH=x86_64' "$kut/config.mak"; then
	echo "kvm-unit-tests: $kut is not built for x86_64 (config.mak ARCH)" >&2
	exit 2
fi
ls "$kut"/x86/*.flat >/dev/null 2>&1 || { echo "kvm-unit-tests: no x86/*.flat in $kut: build it as its README says" >&2; exit 2; }
build=$(cd "$build" 2>/dev/null && pwd) || { echo "kvm-unit-tests: no build folder" >&2; exit 2; }
modvm=$build/modvm
qemu=${QEMU:-qemu-system-x86_64}
if [ $do_modvm = 1 ] && [ ! -x "$modvm" ]; then
	echo "kvm-unit-tests: no $modvm: build modvm first" >&2
	exit 2
fi
if [ $do_qemu = 1 ] && ! command -v "$qemu" >/dev/null; then
	echo "kvm-unit-tests: no $qemu (apt-get install qemu-system-x86), or --no-qemu" >&2
	exit 2
fi
if [ -z "$out" ]; then
	out=$(mktemp -d /tmp/kut-run.XXXXXX)
else
	mkdir -p "$out" || exit 2
	out=$(cd "$out" && pwd)
fi

# ---- modvm's CPU models, by the QEMU feature names tests ask for ---------
# (core/cpumodel.c: every model has 40 physical address bits; the baselines
# and system-v1/v2 are AuthenticAMD, system-v1-intel and system-v2-intel
# GenuineIntel; system-v1* add x2APIC, TSC deadline, PCID, INVPCID, UMIP,
# SMEP, SMAP, PKU, RDTSCP and RDPID to baseline-v1-xsave, system-v2* the
# XSAVE of PKRU, system-v2-intel PKS (Intel's only); none has LA57, VMX or
# SVM)
common_feats=" fpu de pse tsc msr pae cx8 apic sep mtrr pge cmov pat clflush mmx fxsr sse sse2 syscall nx lm hypervisor "
sys_feats=" x2apic tsc-deadline tsc_deadline_timer pcid invpcid umip smep smap pku rdtscp rdpid "
declare -A model_feats=(
	[baseline-v1]="$common_feats"
	[baseline-v1-xsave]="$common_feats xsave "
	[baseline-v2]="$common_feats pni sse3 ssse3 cx16 sse4.1 sse4_1 sse4.2 sse4_2 popcnt lahf-lm lahf_lm "
	[system-v1]="$common_feats xsave $sys_feats"
	[system-v1-intel]="$common_feats xsave $sys_feats"
	[system-v2]="$common_feats xsave $sys_feats"
	[system-v2-intel]="$common_feats xsave $sys_feats pks "
)
declare -A model_vendor=(
	[baseline-v1]=AuthenticAMD [baseline-v1-xsave]=AuthenticAMD
	[baseline-v2]=AuthenticAMD [system-v1]=AuthenticAMD
	[system-v1-intel]=GenuineIntel [system-v2]=AuthenticAMD
	[system-v2-intel]=GenuineIntel
)
# Which model stands for a QEMU CPU name, in order of preference: the first
# that has every +feature and none of the -features of the entry wins.
models_for_cpu() {
	case "$1" in
	qemu64 | kvm64 | Opteron_G*) echo "baseline-v1 baseline-v1-xsave baseline-v2 system-v1 system-v1-intel system-v2 system-v2-intel" ;;
	"") echo "baseline-v1 baseline-v1-xsave baseline-v2 system-v1 system-v1-intel system-v2 system-v2-intel" ;;
	# QEMU's max has every feature TCG can do (SMAP, PKU, PKS, RDTSCP, ...),
	# PKS even with an AMD vendor; modvm's model with the most features is
	# system-v2-intel (system-v2's and PKS, which only Intel has)
	max) echo "system-v2-intel system-v2 system-v1 system-v1-intel baseline-v1-xsave baseline-v1 baseline-v2" ;;
	*) echo "" ;;
	esac
}

# split_words STRING: words=(...) as the shell would split STRING, quotes
# removed, without evaluating anything in it.
split_words() {
	words=()
	[ -z "${1// /}" ] && return
	mapfile -t words < <(xargs printf '%s\n' <<<"$1")
}

# map_modvm OPTS: the entry's qemu_params as a modvm config. Sets m_model,
# m_mem, m_cpus_extra, m_args_extra, m_notes, and m_skip (a reason) when
# modvm cannot give the entry what it asks for.
map_modvm() {
	local -a w
	local i cpu="" name flags f model cands
	m_model='' m_mem=128M m_notes='' m_skip='' m_cpus_extra='' m_args_extra=''
	split_words "$1"
	w=("${words[@]}")
	for ((i = 0; i < ${#w[@]}; i++)); do
		case "${w[i]}" in
		-cpu) cpu=${w[++i]:-} ;;
		-m)
			f=${w[++i]:-}
			case "$f" in
			*[gG]) m_mem=${f%[gG]}G ;;
			*[mM]) m_mem=${f%[mM]}M ;;
			*[0-9]) m_mem=${f}M ;;
			*) m_skip="memory size $f"; return ;;
			esac ;;
		-smp) m_cpus_extra=${w[++i]:-} ;;
		-append) m_args_extra=${w[++i]:-} ;;
		-machine | -M)
			for f in ${w[++i]//,/ }; do
				case "$f" in
				pit=off) m_notes+="pit=off ignored (it only lets AVIC work); " ;;
				accel=*) ;;
				*) m_skip="needs QEMU machine option $f (modvm builds one PC)"; return ;;
				esac
			done ;;
		-device) m_skip="needs device ${w[++i]:-} (modvm has no such plugin)"; return ;;
		-enable-kvm) m_skip="needs KVM (-enable-kvm)"; return ;;
		-overcommit) m_notes+="-overcommit ${w[++i]:-} ignored; " ;;
		-global) m_notes+="-global ${w[++i]:-} ignored; " ;;
		*) m_skip="QEMU option ${w[i]} has no modvm equivalent"; return ;;
		esac
	done
	name=${cpu%%,*}
	flags=
	[ "$name" != "$cpu" ] && flags=${cpu#*,}
	case "$name" in
	host) m_skip="needs -cpu host (the host's CPU passed through: KVM engines only)"; return ;;
	esac
	cands=$(models_for_cpu "$name")
	if [ -z "$cands" ]; then
		m_skip="needs CPU model $name (modvm's models are AMD baselines: core/cpumodel.c)"
		return
	fi
	local plus="" minus=""
	for f in ${flags//,/ }; do
		case "$f" in
		vendor=AuthenticAMD | vendor=GenuineIntel)
			local keep=""
			for model in $cands; do
				[ "${model_vendor[$model]}" = "${f#vendor=}" ] && keep+=" $model"
			done
			cands=$keep ;;
		vendor=*) m_skip="needs vendor ${f#vendor=} (modvm models are AuthenticAMD or GenuineIntel)"; return ;;
		host-phys-bits | host-phys-bits=on) m_notes+="host-phys-bits: the model's 40 physical address bits; " ;;
		host-phys-bits=off | migratable=*) ;;
		phys-bits=40) ;;
		phys-bits=*) m_skip="needs ${f} (modvm models have 40 physical address bits)"; return ;;
		hv_* | hv-*) m_skip="needs Hyper-V enlightenments ($f)"; return ;;
		+*) plus+=" ${f#+}" ;;
		-*) minus+=" ${f#-}" ;;
		*=*) m_skip="needs CPU option $f"; return ;;
		*) plus+=" $f" ;;
		esac
	done
	if [ -n "$force_model" ]; then
		m_model=$force_model
		return
	fi
	for model in $cands; do
		local ok=1
		for f in $plus; do
			[[ "${model_feats[$model]}" == *" $f "* ]] || ok=0
		done
		for f in $minus; do
			[[ "${model_feats[$model]}" == *" $f "* ]] && ok=0
		done
		if [ $ok = 1 ]; then
			m_model=$model
			return
		fi
	done
	local missing="" have=""
	for f in $plus; do
		local any=0
		for model in "${!model_feats[@]}"; do
			[[ "${model_feats[$model]}" == *" $f "* ]] && any=1
		done
		if [ $any = 0 ]; then missing+=" $f"; else have+=" $f"; fi
	done
	if [ -n "$missing" ] && [ $drop_features = 1 ]; then
		# retry with only the features some model has
		for model in $cands; do
			local ok=1
			for f in $have; do
				[[ "${model_feats[$model]}" == *" $f "* ]] || ok=0
			done
			for f in $minus; do
				[[ "${model_feats[$model]}" == *" $f "* ]] && ok=0
			done
			if [ $ok = 1 ]; then
				m_model=$model
				m_notes+="without${missing// / +} (no model has it); "
				return
			fi
		done
	fi
	if [ -n "$missing" ]; then
		m_skip="needs CPU feature${missing// / +} (no modvm CPU model has it)"
		return
	fi
	m_skip="no modvm CPU model has all of +${plus# } -${minus# }"
}

# ---- deciding a result like run_tests.sh ------------------------------------
# verdict STATUS ERRFILE OUTFILE: sets v_res (PASS/FAIL/SKIP) and v_why.
verdict() {
	local ret=$1 errs first
	v_why=
	# stderr lines that are not warnings or notes mean the VMM failed
	errs=$(grep -v -i -e warning -e '^modvm: note:' "$2" 2>/dev/null | head -1 | cut -c1-120)
	if [ "$ret" = 0 ]; then
		ret=1
		v_why="exited 0: no debug-exit"
	elif [ "$ret" = 1 ]; then
		if [ -n "$errs" ]; then
			v_why="VMM error: $errs"
		else
			ret=0
		fi
	fi
	first=$(grep -a -m1 -e '^FAIL' -e 'Unhandled exception' "$3" 2>/dev/null |
		tr -d '\r' | cut -c1-100)
	case $ret in
	0) v_res=PASS ;;
	77) v_res=SKIP; v_why="every subtest skipped" ;;
	124) v_res=FAIL; v_why="timeout (${cur_timeout}s)" ;;
	*)
		v_res=FAIL
		if [ -z "$v_why" ]; then
			if [ "$ret" = 137 ] && [ "$v_secs" -ge $((cur_timeout * 10)) ]; then
				# run_tests.sh says "terminated on SIGKILL": the VMM
				# outlived timeout's SIGTERM by a second
				v_why="timeout (${cur_timeout}s), then SIGKILL"
			elif [ "$ret" -gt 127 ]; then
				v_why="terminated on signal $((ret - 128))"
			elif [ "$ret" = 3 ]; then
				v_why="test failures (status 3)"
			elif [ "$ret" = 127 ]; then
				v_why="abort() (status 127)"
			else
				v_why="exit status $ret${errs:+ ($errs)}"
			fi
		fi
		if [ -n "$first" ]; then v_why+=": $first"; fi ;;
	esac
}

# run_modvm NAME KERNEL CPUS ARGS: result in v_res / v_why
run_modvm() {
	local name=$1 kernel=$2 cpus=$3 args=$4 eprop="" p ret t0
	for p in "${eprops[@]}"; do
		eprop+=" ${p%%=*} = \"${p#*=}\";"
	done
	cat >"$out/$name.cfg" <<CFG
vm: {
  name = "kut-$name"; memory = "$m_mem"; cpus = $cpus;
  cpu = { engine = "$engine"; model = "$m_model";$eprop };
  boot = { kernel = "$kernel"; format = "multiboot"; cmdline = "$kernel${args:+ $args}"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "file"; path = "$out/$name.modvm.out"; append = false; },
    { plugin = "isa-debug-exit"; id = "debugexit"; port = 0xf4; size = 4; },
    { plugin = "pc-testdev"; id = "testdev"; },
    { plugin = "fw-cfg"; id = "fwcfg"; }
  );
};
CFG
	t0=$(date +%s%N)
	timeout -k 1s --foreground "$cur_timeout" "$modvm" run "$out/$name.cfg" \
		</dev/null >"$out/$name.modvm.log" 2>"$out/$name.modvm.err"
	ret=$?
	v_secs=$(( ($(date +%s%N) - t0) / 100000000 ))
	# exit 2: modvm refused to start (nothing ran). A config it cannot run
	# (an engine refusing the model) is a SKIP, as run_tests.sh skips what
	# QEMU refuses; a kernel it cannot load is a FAIL.
	if [ $ret = 2 ] && ! grep -q ': boot: ' "$out/$name.modvm.err"; then
		v_res=SKIP
		v_why="modvm refused: $(grep -v '^modvm: note:' "$out/$name.modvm.err" | head -1 | sed 's/^modvm: //' | cut -c1-140)"
		return
	fi
	verdict $ret "$out/$name.modvm.err" "$out/$name.modvm.out"
}

# run_qemu NAME KERNEL CPUS ARGS OPTS: as kvm-unit-tests' x86/run builds
# the command, with accel=tcg and without the initrd of environment
# variables (modvm gets none either).
run_qemu() {
	local name=$1 kernel=$2 cpus=$3 args=$4 opts=$5 ret probe t0
	local -a o cmd
	split_words "$opts"
	o=("${words[@]}")
	# shellcheck disable=SC2054 # QEMU's own commas
	cmd=("$qemu" --no-reboot -nodefaults -device pc-testdev
	     -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none
	     -serial stdio -device pci-testdev -machine accel=tcg -smp "$cpus")
	[ -n "$args" ] && cmd+=(-append "$args")
	cmd+=("${o[@]}")
	# run_tests.sh's probe: QEMU must accept the options and fail only on
	# the missing kernel, else the entry is skipped with QEMU's complaint
	probe=$(timeout 20 "${cmd[@]}" -kernel _NO_FILE_4Uhere_ </dev/null 2>&1)
	if ! grep -q -e "[Cc]ould not \(load\|open\) kernel" -e "error loading" \
		-e "failed to load" <<<"$probe"; then
		v_res=SKIP
		v_why="$(tail -1 <<<"$probe" | cut -c1-120)"
		return
	fi
	t0=$(date +%s%N)
	timeout -k 1s --foreground "$cur_timeout" "${cmd[@]}" -kernel "$kernel" \
		</dev/null >"$out/$name.qemu.out" 2>"$out/$name.qemu.err"
	ret=$?
	v_secs=$(( ($(date +%s%N) - t0) / 100000000 ))
	verdict $ret "$out/$name.qemu.err" "$out/$name.qemu.out"
}

declare -A count=()
# run_entry: one [section] of unittests.cfg (variables set by the parser)
run_entry() {
	local skip='' mres=- qres=- mwhy='' qwhy='' mt='' qt='' c path val cpus args
	[ -z "$e_name" ] && return
	[ -n "$only" ] && [[ "$only" != *",$e_name,"* ]] && return
	if [ -n "$e_arch" ] && [ "$e_arch" != x86_64 ]; then
		skip="$e_arch only"
	elif [[ " $e_groups " == *" nodefault "* ]]; then
		skip="test marked as manual run only"
	elif [ -n "$e_disabled_if" ]; then
		skip="disabled_if ($e_disabled_if) is not evaluated here"
	elif [ ! -f "$kut/x86/$e_file" ]; then
		skip="Test file '$e_file' not found"
	fi
	for c in $e_check; do
		[ -n "$skip" ] && break
		path=${c%%=*}
		val=${c#*=}
		if ! [ -f "$path" ] || [ "$(cat "$path")" != "$val" ]; then
			skip="$path not equal to $val"
		fi
	done
	cpus=${e_smp:-1}
	args=$e_args
	if [[ "$args" == *'`'* ]]; then
		# kvmclock_test passes `date +%s`, which run_tests.sh evaluates
		args=${args//\`date +%s\`/$(date +%s)}
	fi
	args=${args#[\"\']}
	args=${args%[\"\']}
	cur_timeout=${t_override:-${e_timeout:-90}}
	cur_timeout=${cur_timeout%s}
	cur_timeout=$(awk -v t="$cur_timeout" -v f="$factor" 'BEGIN { printf "%d", t * f + 0.5 }')
	if [ -n "$skip" ]; then
		[ $do_modvm = 1 ] && mres=SKIP mwhy=$skip
		[ $do_qemu = 1 ] && qres=SKIP qwhy=$skip
	else
		if [ $do_modvm = 1 ]; then
			map_modvm "$e_opts"
			local mcpus=${m_cpus_extra:-$cpus} margs=${m_args_extra:-$args}
			if [ -n "$m_skip" ]; then
				mres=SKIP mwhy=$m_skip
			elif [[ "$args" == *'`'* ]]; then
				mres=SKIP mwhy="test_args need shell evaluation"
			elif ! [[ "$mcpus" =~ ^[0-9]+$ ]]; then
				mres=SKIP mwhy="smp = $mcpus"
			elif [ -n "$e_accel" ] && [ "$e_accel" = kvm ] &&
				[ "$engine" != cpu-svm ] && [ "$engine" != cpu-vtx ]; then
				mres=SKIP mwhy="kvm only, but the engine is $engine"
			else
				run_modvm "$e_name" "$kut/x86/$e_file" "$mcpus" "$margs"
				mres=$v_res mwhy="${m_notes}${v_why}" mt=$(secs "$v_secs")
				mwhy=${mwhy%; }
			fi
		fi
		if [ $do_qemu = 1 ]; then
			if [ -n "$e_accel" ] && [ "$e_accel" != tcg ]; then
				qres=SKIP qwhy="$e_accel only, but ACCEL=tcg"
			else
				v_secs=''
				run_qemu "$e_name" "$kut/x86/$e_file" "$cpus" "$args" "$e_opts"
				qres=$v_res qwhy=$v_why
				[ -n "$v_secs" ] && qt=$(secs "$v_secs")
			fi
		fi
	fi
	count[m$mres]=$((${count[m$mres]:-0} + 1))
	count[q$qres]=$((${count[q$qres]:-0} + 1))
	printf '%-40s %-4s %6s  %-4s %6s  %s%s\n' "$e_name" "$mres" "$mt" "$qres" "$qt" \
		"${mwhy:+modvm: $mwhy}" "${qwhy:+${mwhy:+ / }qemu: $qwhy}"
}

secs() { # tenths of a second -> "12.3s"
	printf '%d.%ds' $(($1 / 10)) $(($1 % 10))
}

# ---- the parser: scripts/common.bash for_each_unittest, x86 keys ----------
parse_cfg() {
	local line next
	e_name=
	while IFS= read -r line || [ -n "$line" ]; do
		if [[ "$line" =~ ^\[(.*)\]$ ]]; then
			next=${BASH_REMATCH[1]}
			run_entry
			e_name=$next e_file='' e_smp=1 e_args='' e_opts='' e_groups=''
			e_arch='' e_check='' e_accel='' e_timeout='' e_disabled_if=''
		elif [[ "$line" =~ ^file\ *=\ *(.*)$ ]]; then e_file=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^smp\ *=\ *(.*)$ ]]; then e_smp=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^(test_args|append)\ *=\ *(.*)$ ]]; then e_args=${BASH_REMATCH[2]}
		elif [[ "$line" =~ ^(qemu_params|extra_params)\ *=\ *(.*)$ ]]; then e_opts=${BASH_REMATCH[2]}
		elif [[ "$line" =~ ^groups\ *=\ *(.*)$ ]]; then e_groups=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^arch\ *=\ *(.*)$ ]]; then e_arch=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^check\ *=\ *(.*)$ ]]; then e_check=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^accel\ *=\ *(.*)$ ]]; then e_accel=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^timeout\ *=\ *(.*)$ ]]; then e_timeout=${BASH_REMATCH[1]}
		elif [[ "$line" =~ ^disabled_if\ *=\ *(.*)$ ]]; then e_disabled_if=${BASH_REMATCH[1]}
		fi
	done <"$cfgfile"
	run_entry
}

mside="modvm $engine${eprops[*]:+ (${eprops[*]})}${force_model:+ model $force_model}"
echo "kvm-unit-tests $(git -C "$kut" describe --always --dirty 2>/dev/null || echo '(not a git tree)') from $kut"
echo "modvm: $mside ($modvm)"
[ $do_qemu = 1 ] && echo "qemu:  $("$qemu" --version | head -1), accel tcg"
echo "host:  $(grep -m1 '^vendor_id' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/ *$//'), $(date -u +%Y-%m-%d)"
echo
printf '%-40s %-4s %6s  %-4s %6s  %s\n' ENTRY MODVM TIME QEMU TIME REASONS
parse_cfg
echo
for side in m q; do
	[ $side = m ] && [ $do_modvm = 0 ] && continue
	[ $side = q ] && [ $do_qemu = 0 ] && continue
	label=$([ $side = m ] && echo "$mside" || echo "qemu tcg")
	printf '%-28s PASS %3d  FAIL %3d  SKIP %3d\n' "$label:" "${count[${side}PASS]:-0}" \
		"${count[${side}FAIL]:-0}" "${count[${side}SKIP]:-0}"
done
echo "logs, consoles and configs: $out"
# exit status: 0 if nothing failed under modvm (QEMU's results are only a
# reference)
[ "${count[mFAIL]:-0}" = 0 ]
