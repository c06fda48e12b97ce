# shellcheck shell=bash
# vm.sh - shared code of tests/vm/run and tests/vm/shell (sourced, bash).
#
# The caller sets vm_dir (the directory of tests/vm) and prog, then calls
# vm_parse_options "$@", vm_build_initramfs and vm_qemu_args.

# The machine.  Node 0: 1 GiB and every CPU; node 1: 1 GiB, no CPU.  The
# memmap= reservation at 1.5 GiB lies inside node 1 and is the cohmem pool.
VM_NODE_MEM=1G
VM_POOL_START=0x60000000
VM_POOL_SIZE=256M
VM_POOL_NID=1
# The '$' must reach the kernel as is: it is single-quoted here and the
# command line is passed to QEMU as one argument, never re-evaluated.
# The stall and lockup detectors measure wall-clock time, which a loaded host
# stretches under TCG: their limits are raised to the maximum (300 s, 60 s ->
# 120 s soft lockup) so only a real hang trips them; /init raises the hung
# task limit to 600 s, below the default VM timeout of 900 s.
# shellcheck disable=SC2016
VM_CMDLINE_BASE='console=ttyS0 memmap=256M$0x60000000 panic=-1 quiet'
VM_CMDLINE_BASE+=' rcupdate.rcu_cpu_stall_timeout=300 watchdog_thresh=60'

vm_die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 2
}

vm_note() {
	printf '%s: %s\n' "$prog" "$*" >&2
}

vm_options_help() {
	cat <<'EOF'
Payload and machine options (run and shell):
  --kernel PATH|SERIES  kernel image, or a series for tests/vm/fetch-kernel
                        (default: 6.1, the image matching linux-headers-amd64)
  --module PATH         kernel module for /coh/modules/ (repeatable)
  --bin PATH            executable for /coh/bin/, with its libraries
                        (repeatable)
  --file SRC:DEST       extra file or directory at DEST in the guest
                        (repeatable)
  --append ARGS         more kernel command line arguments
  --env NAME=VALUE      one more environment variable for the tests
                        (repeatable)
  --smp N               number of CPUs, all on node 0 (default 2)
  --timeout SECS        limit for the whole VM (run: default 900; shell: none)
  --test-timeout SECS   limit for each test (default 300)
  --log-dir DIR         where to write the logs (default: a new directory
                        under ${TMPDIR:-/tmp})
  --keep-log            keep the logs even when everything passed
  --verbose             show the serial console while the VM runs (run only)
EOF
}

# vm_parse_options ARGS... ; leaves the tests in vm_tests.
vm_parse_options() {
	vm_kernel=6.1
	vm_modules=()
	vm_bins=()
	vm_files=()
	vm_envs=()
	vm_tests=()
	vm_append=
	vm_smp=2
	vm_timeout=
	vm_test_timeout=300
	vm_log_dir=
	vm_keep_log=0
	vm_verbose=0

	local opt val
	while [ $# -gt 0 ]; do
		opt=$1
		val=
		case $opt in
		--*=*)
			val=${opt#*=}
			opt=${opt%%=*}
			;;
		--kernel | --module | --bin | --file | --env | --append | --smp | \
			--timeout | --test-timeout | --log-dir)
			[ $# -ge 2 ] || vm_die "$opt needs an argument"
			val=$2
			shift
			;;
		esac
		shift
		case $opt in
		--kernel) vm_kernel=$val ;;
		--module) vm_modules+=("$val") ;;
		--bin) vm_bins+=("$val") ;;
		--file) vm_files+=("$val") ;;
		--env)
			case $val in
			[A-Za-z_]*=*) ;;
			*) vm_die "--env wants NAME=VALUE: $val" ;;
			esac
			case ${val%%=*} in
			*[!A-Za-z0-9_]*) vm_die "--env: bad variable name: ${val%%=*}" ;;
			esac
			vm_envs+=("$val")
			;;
		--append) vm_append="$vm_append $val" ;;
		--smp) vm_smp=$val ;;
		--timeout) vm_timeout=$val ;;
		--test-timeout) vm_test_timeout=$val ;;
		--log-dir) vm_log_dir=$val ;;
		--keep-log) vm_keep_log=1 ;;
		--verbose | -v) vm_verbose=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		--)
			vm_tests+=("$@")
			break
			;;
		-*)
			vm_die "unknown option: $opt (see --help)"
			;;
		*) vm_tests+=("$opt") ;;
		esac
	done

	local n
	for n in "$vm_smp" "${vm_timeout:-1}" "$vm_test_timeout"; do
		case $n in
		'' | *[!0-9]* | 0) vm_die "not a positive number: '$n'" ;;
		esac
	done
}

# Is FILE an ELF object?
vm_is_elf() {
	[ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]
}

# vm_install SRC DEST [MODE]: copy SRC (symlinks resolved) to DEST in the stage.
vm_install() {
	local dest=$vm_stage$2
	if [ -e "$dest" ] && ! cmp -s "$1" "$dest"; then
		vm_die "two different files for $2 in the guest ($1)"
	fi
	mkdir -p "${dest%/*}" || exit 2
	cp -L "$1" "$dest" || vm_die "cannot copy $1"
	[ -z "${3:-}" ] || chmod "$3" "$dest"
}

# vm_add_libs ELF: copy the shared libraries ELF needs, the loader included.
# Libraries from the standard directories keep their path; others go to
# /coh/lib, which is on LD_LIBRARY_PATH in the guest.
vm_add_libs() {
	local elf=$1 out line lib
	if ! out=$(LC_ALL=C ldd "$elf" 2>&1); then
		case $out in
		*'not a dynamic executable'* | *'statically linked'*) return 0 ;;
		esac
		vm_die "ldd $elf failed: $out"
	fi
	case $out in
	*'statically linked'*) return 0 ;;
	*'not found'*)
		vm_die "$elf needs libraries that are not found:
$(printf '%s\n' "$out" | grep 'not found')"
		;;
	esac
	while IFS= read -r line; do
		lib=
		case $line in
		*' => '/*) lib=${line#* => } ;;
		[[:space:]]/*) lib=${line#"${line%%[![:space:]]*}"} ;;
		esac
		lib=${lib%% (0x*}
		[ -n "$lib" ] || continue
		[ -n "${vm_libs_done[$lib]:-}" ] && continue
		vm_libs_done[$lib]=1
		case ${lib%/*} in
		/lib | /lib64 | /usr/lib | /lib/x86_64-linux-gnu | /usr/lib/x86_64-linux-gnu)
			vm_install "$lib" "$lib"
			;;
		*)
			vm_install "$lib" "/coh/lib/${lib##*/}"
			;;
		esac
	done <<<"$out"
}

# The script's interpreter, when busybox does not provide it.
vm_add_interpreter() {
	local script=$1 line interp
	IFS= read -r line <"$script" || return 0
	case $line in
	'#!'*) ;;
	*) return 0 ;;
	esac
	line=${line#\#!}
	line=${line#"${line%%[![:space:]]*}"}
	interp=${line%%[[:space:]]*}
	if [ "$interp" = /usr/bin/env ]; then
		interp=${line#/usr/bin/env}
		interp=${interp#"${interp%%[![:space:]]*}"}
		interp=${interp%%[[:space:]]*}
		[ -n "${vm_applets[$interp]:-}" ] && return 0
		interp=$(command -v "$interp") ||
			vm_die "$script: interpreter '${line#/usr/bin/env }' not found on this host"
	fi
	[ -e "$vm_stage$interp" ] && return 0
	[ -x "$interp" ] || vm_die "$script: interpreter $interp not found on this host"
	vm_install "$interp" "$interp" 755
	vm_is_elf "$interp" && vm_add_libs "$interp"
}

# vm_add_exec SRC DEST: an executable (ELF or script) and what it needs.
vm_add_exec() {
	local src=$1
	[ -f "$src" ] || vm_die "no such file: $src"
	[ -x "$src" ] || vm_die "not executable: $src"
	if grep -q 'temporary wrapper script for' "$src" 2>/dev/null &&
		! vm_is_elf "$src"; then
		vm_die "$src is a libtool wrapper script; pass the real binary (link it with -no-install or statically)"
	fi
	vm_install "$src" "$2" 755
	if vm_is_elf "$src"; then
		vm_add_libs "$src"
	else
		vm_add_interpreter "$src"
	fi
}

vm_add_busybox() {
	local bb applet
	bb=$(command -v busybox) || vm_die "busybox not found (apt-get install busybox-static)"
	if LC_ALL=C ldd "$bb" >/dev/null 2>&1; then
		vm_die "$bb is dynamically linked; install busybox-static"
	fi
	vm_install "$bb" /bin/busybox 755
	declare -gA vm_applets=()
	while IFS= read -r applet; do
		case $applet in
		linuxrc | sbin/init | bin/busybox) continue ;;
		esac
		vm_applets[${applet##*/}]=1
		mkdir -p "$vm_stage/${applet%/*}"
		ln -sf /bin/busybox "$vm_stage/$applet"
	done < <("$bb" --list-full)
	[ -e "$vm_stage/bin/sh" ] || vm_die "busybox has no sh applet"
}

# vm_build_initramfs MODE OUTPUT: MODE is run or shell.
vm_build_initramfs() {
	local mode=$1 output=$2 f name src dest
	vm_stage=$(mktemp -d "${TMPDIR:-/tmp}/coh-vm-stage.XXXXXX") || exit 2
	declare -gA vm_libs_done=()

	mkdir -p "$vm_stage"/{dev,proc,sys,tmp,run,root,etc,coh/bin,coh/tests,coh/modules,coh/lib}
	vm_add_busybox
	vm_install "$vm_dir/init" /init 755

	for f in "${vm_bins[@]}"; do
		vm_add_exec "$f" "/coh/bin/${f##*/}"
	done
	for f in "${vm_modules[@]}"; do
		[ -f "$f" ] || vm_die "no such module: $f"
		case $f in
		*.ko) ;;
		*) vm_die "not a kernel module (*.ko): $f" ;;
		esac
		vm_install "$f" "/coh/modules/${f##*/}" 644
	done
	for f in "${vm_files[@]}"; do
		src=${f%%:*}
		dest=${f#*:}
		case $f in
		*:/*) ;;
		*) vm_die "--file wants SRC:DEST with an absolute DEST: $f" ;;
		esac
		[ -e "$src" ] || vm_die "no such file: $src"
		mkdir -p "$vm_stage${dest%/*}"
		cp -RL "$src" "$vm_stage$dest" || vm_die "cannot copy $src"
	done
	: >"$vm_stage/coh/tests.list"
	for f in "${vm_tests[@]}"; do
		name=${f##*/}
		[ ! -e "$vm_stage/coh/tests/$name" ] ||
			vm_die "two tests named $name; test names must be unique"
		vm_add_exec "$f" "/coh/tests/$name"
		printf '%s\n' "$name" >>"$vm_stage/coh/tests.list"
	done

	# A non-root user for permission tests: nobody (65534).
	cat >"$vm_stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
EOF
	cat >"$vm_stage/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
nobody:x:65534:
EOF
	printf 'root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n' >"$vm_stage/etc/shadow"
	chmod 600 "$vm_stage/etc/shadow"
	echo "coh-vm" >"$vm_stage/etc/hostname"

	{
		echo "COH_VM=1"
		echo "COH_VM_MODE=$mode"
		echo "COH_TEST_TIMEOUT=$vm_test_timeout"
		echo "COH_MODULE_DIR=/coh/modules"
		echo "COH_POOL_START=$VM_POOL_START"
		echo "COH_POOL_SIZE=$VM_POOL_SIZE"
		echo "COH_POOL_NID=$VM_POOL_NID"
		echo "HOME=/root"
		echo "TMPDIR=/tmp"
		if [ -n "$(ls -A "$vm_stage/coh/lib")" ]; then
			echo "LD_LIBRARY_PATH=/coh/lib"
		fi
		for f in "${vm_envs[@]}"; do
			name=${f%%=*}
			val=${f#*=}
			# Single-quoted for the guest's sh: ' becomes '\''.
			printf "%s='%s'\nexport %s\n" "$name" "${val//\'/\'\\\'\'}" "$name"
		done
		echo "export COH_VM COH_VM_MODE COH_TEST_TIMEOUT COH_MODULE_DIR"
		echo "export COH_POOL_START COH_POOL_SIZE COH_POOL_NID HOME TMPDIR"
		echo 'export PATH=/coh/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		# shellcheck disable=SC2016 # expanded in the guest
		echo '[ -z "${LD_LIBRARY_PATH:-}" ] || export LD_LIBRARY_PATH'
	} >"$vm_stage/coh/env"
	printf '. /coh/env\nPS1="coh-vm:\\w# "\n' >"$vm_stage/etc/profile"

	(cd "$vm_stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$output" ||
		vm_die "cannot build the initramfs"
	rm -rf "$vm_stage"
	vm_stage=
}

# vm_resolve_kernel: sets vm_vmlinuz.
vm_resolve_kernel() {
	if [ -f "$vm_kernel" ]; then
		vm_vmlinuz=$vm_kernel
		return
	fi
	case $vm_kernel in
	*/*) vm_die "no such kernel image: $vm_kernel" ;;
	esac
	vm_vmlinuz=$("$vm_dir/fetch-kernel" --boot-image "$vm_kernel") ||
		vm_die "cannot get the $vm_kernel kernel (tests/vm/fetch-kernel $vm_kernel failed)"
}

# vm_qemu_args INITRD: sets the vm_qemu array (without the serial ports).
vm_qemu_args() {
	local initrd=$1
	command -v qemu-system-x86_64 >/dev/null ||
		vm_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
	vm_qemu=(
		qemu-system-x86_64
		-accel tcg
		-machine pc
		-m 2G
		-smp "$vm_smp"
		-object "memory-backend-ram,id=mem0,size=$VM_NODE_MEM"
		-object "memory-backend-ram,id=mem1,size=$VM_NODE_MEM"
		-numa "node,nodeid=0,cpus=0-$((vm_smp - 1)),memdev=mem0"
		-numa "node,nodeid=1,memdev=mem1"
		-kernel "$vm_vmlinuz"
		-initrd "$initrd"
		-append "$VM_CMDLINE_BASE$vm_append"
		-nodefaults
		-no-user-config
		-display none
		-no-reboot
	)
}

# For -serial file:PATH and -chardev: a comma in a path is written twice.
vm_qemu_path() {
	printf '%s' "${1//,/,,}"
}
