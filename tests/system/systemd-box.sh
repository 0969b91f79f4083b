#!/bin/bash
#
# Vendored copy of shared/tools/systemd-box.sh (written for this project's CI
# study; the findings are in shared/tools/systemd-box.md). Copied here because
# CI has no guarantee of ../shared. Keep it in sync with the original; local
# changes: none.
#
# systemd-box.sh - boot a real systemd (PID 1) in a throw-away systemd-nspawn container,
# run commands in it, tear it down. Made for CI hosts where PID 1 is NOT systemd
# (e.g. a Firecracker VM with a custom init), running as root.
#
# Usage:
#   systemd-box.sh build CACHE_DIR
#       Build (or reuse) the cached Debian rootfs in CACHE_DIR/rootfs.
#   systemd-box.sh run CACHE_DIR [--copy HOST_PATH:CTR_PATH]... [--bind HOST:CTR]... -- CMD [ARG]...
#       All in one: build-if-needed, boot, wait for boot, copy files in, run CMD inside
#       (stdin/stdout/stderr are passed through, exit code is returned), tear down.
#   systemd-box.sh up CACHE_DIR STATE_DIR [--bind HOST:CTR]...
#       Boot a box in the background; STATE_DIR (must not exist yet) holds its state.
#   systemd-box.sh exec STATE_DIR [--] CMD [ARG]...     run CMD inside a running box
#   systemd-box.sh cp   STATE_DIR HOST_PATH CTR_PATH     copy a file/dir into the box
#   systemd-box.sh down STATE_DIR                        stop the box and remove STATE_DIR
#
# Environment knobs (all optional):
#   SDBOX_SUITE=bookworm                Debian suite of the rootfs
#   SDBOX_MIRROR=URL                   Debian archive (default: the host's own apt source)
#   SDBOX_SECURITY_MIRROR=URL          security archive (default: the host's own apt source)
#   SDBOX_EXTRA_PACKAGES="pkg1,pkg2"    extra packages baked into the cached rootfs
#                                       (e.g. runtime deps of the .deb under test)
#   SDBOX_BOOT_TIMEOUT=120              seconds to wait for `systemctl is-system-running`
#   SDBOX_STOP_TIMEOUT=30               seconds to wait for a clean container shutdown
#   SDBOX_NAME=sdbox-<pid>              machine name (also the container hostname)
#   SDBOX_BOOTSTRAP=auto|mmdebstrap|debootstrap   rootfs builder (auto: mmdebstrap if present)
#   SDBOX_AUTO_INSTALL=1                apt-get install missing host tools (needs apt access)
#   SDBOX_CGROUP=unified|host|legacy    cgroup layout inside the box. unified (default):
#                                       pure cgroup v2 like a real Debian 12 host; host: same
#                                       layout as the host (hybrid here); legacy: v1 only.
#                                       (sets SYSTEMD_NSPAWN_UNIFIED_HIERARCHY for nspawn)
#   SDBOX_NSPAWN_ARGS="..."             extra systemd-nspawn options (word-split), e.g.
#                                       "--private-network" for a loopback-only network
#   SDBOX_CONSOLE_LOG=FILE              on teardown, save the container console (boot and
#                                       shutdown messages) to FILE
#
# How it works (see systemd-box.md for the reasoning):
#   * rootfs: mmdebstrap --variant=minbase + systemd, systemd-sysv, dbus (~15 s, ~210 MB),
#     cached; rebuilt only when suite/mirror/package list change.
#   * each box runs on an overlayfs (lower = cached rootfs, upper = STATE_DIR), so the
#     cache is never modified and teardown is just umount + rm.
#   * the host has no systemd/machined/D-Bus, so nspawn is run with --register=no
#     --keep-unit; to keep its cgroups tidy we first move it into a dedicated cgroup
#     "sdbox-<name>" in every systemd-relevant hierarchy, which we delete at teardown.
#   * commands are run inside with nsenter into the namespaces of the container's PID 1
#     (machinectl/systemd-run -M need machined on the host, which does not exist here).
#   * network: the container shares the host network namespace (no --private-network),
#     so loopback and apt inside work exactly as on the host.
set -euo pipefail

SUITE=${SDBOX_SUITE:-bookworm}
# host_apt_uri SECURITY(0|1): the archive URI the host's apt already uses (deb822 *.sources
# first, then one-line sources.list), so the box fetches from wherever the host may.
host_apt_uri() {
    local want_sec=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v sec="$want_sec" '
            function flush() { if (uri != "" && (suites ~ /-security/) == sec) { print uri; found = 1; exit } uri = ""; suites = "" }
            /^[[:space:]]*$/ { flush(); next }
            $1 == "URIs:" { uri = $2 }
            $1 == "Suites:" { $1 = ""; suites = $0 }
            END { if (!found) flush() }' "$f" && return 0
    done | head -n 1
    if [ -f /etc/apt/sources.list ]; then
        awk -v sec="$want_sec" '$1 == "deb" && (($3 ~ /-security/) == sec) { print $2; exit }' /etc/apt/sources.list
    fi
    return 0
}
MIRROR=${SDBOX_MIRROR:-$(host_apt_uri 0 | head -n 1)}
SECURITY_MIRROR=${SDBOX_SECURITY_MIRROR:-$(host_apt_uri 1 | head -n 1)}
[ -n "$MIRROR" ] || { echo "systemd-box: no Debian archive in the host's apt sources; set SDBOX_MIRROR" >&2; exit 1; }
[ -n "$SECURITY_MIRROR" ] || SECURITY_MIRROR=$MIRROR-security
EXTRA_PACKAGES=${SDBOX_EXTRA_PACKAGES:-}
BOOT_TIMEOUT=${SDBOX_BOOT_TIMEOUT:-120}
CGROUP_MODE=${SDBOX_CGROUP:-unified}
STOP_TIMEOUT=${SDBOX_STOP_TIMEOUT:-30}
# Base package set of the rootfs. apt is already part of minbase.
BASE_PACKAGES="systemd,systemd-sysv,dbus,ca-certificates"
CTR_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '[sdbox %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- host prerequisites
need_host_tools() {
    local missing=() t
    for t in systemd-nspawn nsenter flock mount umount; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    command -v mmdebstrap >/dev/null 2>&1 || command -v debootstrap >/dev/null 2>&1 ||
        missing+=(mmdebstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${SDBOX_AUTO_INSTALL:-0}" = 1 ]; then
        log "installing host packages for: ${missing[*]}"
        # NB: systemd-container pins the host's 'systemd' package to the same version,
        # so this may upgrade systemd on the host (harmless when it is not PID 1).
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd-container mmdebstrap util-linux >&2
    else
        die "missing host tools: ${missing[*]} (apt-get install -y systemd-container mmdebstrap; or set SDBOX_AUTO_INSTALL=1)"
    fi
}

# ---------------------------------------------------------------- rootfs build / cache
cache_key() {
    # Anything that changes the rootfs content must be part of the key.
    printf 'v2\nsuite=%s\nmirror=%s\nsecurity=%s\npackages=%s,%s\narch=%s\n' \
        "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$BASE_PACKAGES" "$EXTRA_PACKAGES" "$(uname -m)"
}

build_rootfs() {
    local cache=$1
    mkdir -p "$cache"
    cache=$(cd "$cache" && pwd)
    # Serialise concurrent builders that share one cache dir.
    exec 9>"$cache/.lock"
    flock 9
    if [ -d "$cache/rootfs" ] && [ -f "$cache/rootfs.key" ] &&
        [ "$(cat "$cache/rootfs.key")" = "$(cache_key)" ]; then
        log "using cached rootfs $cache/rootfs"
        exec 9>&-   # closing the fd releases the lock
        return 0
    fi
    log "building rootfs ($SUITE, packages $BASE_PACKAGES${EXTRA_PACKAGES:+,$EXTRA_PACKAGES}) in $cache/rootfs"
    local t0 pkgs tmp=$cache/rootfs.new
    t0=$(now)
    pkgs=$BASE_PACKAGES${EXTRA_PACKAGES:+,$EXTRA_PACKAGES}
    rm -rf --one-file-system "$tmp"
    local tool=${SDBOX_BOOTSTRAP:-auto}
    if [ "$tool" = auto ]; then
        tool=debootstrap
        command -v mmdebstrap >/dev/null 2>&1 && tool=mmdebstrap
    fi
    if [ "$tool" = mmdebstrap ]; then
        # Use the mirrors explicitly; security + updates so the image matches a real host.
        mmdebstrap --variant=minbase --include="$pkgs" --components=main \
            "$SUITE" "$tmp" \
            "deb $MIRROR $SUITE main" \
            "deb $MIRROR $SUITE-updates main" \
            "deb $SECURITY_MIRROR $SUITE-security main" >"$cache/build.log" 2>&1 ||
            { tail -30 "$cache/build.log" >&2; die "mmdebstrap failed (log: $cache/build.log)"; }
    else
        debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$tmp" "$MIRROR" \
            >"$cache/build.log" 2>&1 ||
            { tail -30 "$cache/build.log" >&2; die "debootstrap failed (log: $cache/build.log)"; }
        printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
            "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" \
            >"$tmp/etc/apt/sources.list"
        rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*_Packages 2>/dev/null || true
    fi
    # Container-friendly tweaks:
    #  - empty machine-id => systemd uses a fresh transient id at every boot
    #  - no /etc/hostname (mmdebstrap copies the build host's): the hostname is then the
    #    machine name set by nspawn -M
    : >"$tmp/etc/machine-id"
    rm -f "$tmp/var/lib/dbus/machine-id" "$tmp/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
    rm -rf --one-file-system "$cache/rootfs"
    mv "$tmp" "$cache/rootfs"
    cache_key >"$cache/rootfs.key"
    log "rootfs built in $(elapsed "$t0") s, size $(du -sh "$cache/rootfs" | cut -f1)"
    exec 9>&-
}

# ---------------------------------------------------------------- helpers
# start time of a PID (field 22 of /proc/PID/stat) - guards against PID reuse
pid_start() { awk '{sub(/^.*\) /,""); print $20}' "/proc/$1/stat" 2>/dev/null; }
pid_alive() { # PID STARTTIME
    [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(pid_start "$1")" = "$2" ]
}
# alive and not a zombie
pid_running() {
    pid_alive "$1" "$2" && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
# children of a PID, without relying on procps
children_of() {
    local f line rest pid
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue   # process may be gone
        rest=${line##*) }            # strip "pid (comm) " (comm may contain spaces)
        rest=${rest#* }              # strip state -> rest starts with ppid
        if [ "${rest%% *}" = "$1" ]; then
            pid=${f#/proc/}; echo "${pid%/stat}"
        fi
    done
    return 0
}

# Cgroup hierarchies in which nspawn/systemd create their cgroups.
cgroup_roots() {
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
        echo /sys/fs/cgroup                     # pure cgroup v2
    else
        [ -d /sys/fs/cgroup/systemd ] && echo /sys/fs/cgroup/systemd   # name=systemd (v1)
        [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup/unified)" = cgroup2fs ] &&
            echo /sys/fs/cgroup/unified          # hybrid: cgroup2 next to v1
    fi
    return 0
}

host_has_systemd() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm)" = systemd ]; }

# ---------------------------------------------------------------- up
cmd_up() {
    local cache=$1 state=$2; shift 2
    local binds=()
    while [ $# -gt 0 ]; do
        case $1 in
            --bind) binds+=("--bind=$2"); shift 2 ;;
            --bind=*) binds+=("$1"); shift ;;
            --bind-ro) binds+=("--bind-ro=$2"); shift 2 ;;
            --bind-ro=*) binds+=("$1"); shift ;;
            *) die "up: unknown option $1" ;;
        esac
    done
    need_host_tools
    build_rootfs "$cache"
    cache=$(cd "$cache" && pwd)
    [ -e "$state" ] && die "state dir $state already exists"
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    # Standalone `up`: if anything below fails, do not leave a half-started box behind.
    # (In `run`, the caller's EXIT trap does this.)
    if [ "${UP_STANDALONE:-0}" = 1 ]; then
        # shellcheck disable=SC2064
        trap "trap '' INT TERM HUP; cmd_down '$state'" EXIT
    fi
    local name=${SDBOX_NAME:-sdbox-$$}
    local t0; t0=$(now)

    # 1. Writable root: overlayfs over the cached rootfs (fallback: full copy).
    mkdir -p "$state/upper" "$state/ovlwork" "$state/root"
    local rootmode=overlay
    if ! mount -t overlay overlay \
        -o "lowerdir=$cache/rootfs,upperdir=$state/upper,workdir=$state/ovlwork" "$state/root" 2>/dev/null; then
        log "overlayfs not available, copying rootfs instead"
        rootmode=copy
        cp -a --reflink=auto "$cache/rootfs/." "$state/root/"
    fi
    cat >"$state/box.env" <<EOF
NAME=$name
ROOTMODE=$rootmode
EOF

    # 2. cgroups: without systemd on the host, nspawn (with --keep-unit) creates its
    #    "payload"/"supervisor" cgroups below the cgroup it was started in. Start it in
    #    our own cgroup so nothing is left at the hierarchy root and cleanup is simple.
    local nspawn_opts=(--quiet --register=no -M "$name" -D "$state/root"
        --link-journal=no --console=read-only --setenv=SYSTEMD_COLORS=0 "${binds[@]}")
    # shellcheck disable=SC2206
    nspawn_opts+=(${SDBOX_NSPAWN_ARGS:-})
    local nspawn_env=()
    case $CGROUP_MODE in
        unified) nspawn_env=(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1) ;;
        legacy) nspawn_env=(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0) ;;
        host) ;;
        *) die "SDBOX_CGROUP must be unified, host or legacy" ;;
    esac
    local cgdirs=() r
    if host_has_systemd; then
        # Untested path: with systemd on the host nspawn allocates its own scope via D-Bus.
        :
    else
        nspawn_opts+=(--keep-unit)
        for r in $(cgroup_roots); do
            mkdir "$r/$name"
            cgdirs+=("$r/$name")
        done
    fi
    echo "CGDIRS='${cgdirs[*]}'" >>"$state/box.env"

    # 3. Boot in the background, own session, stdin from /dev/null (so the box never
    #    eats the caller's stdin). Console output (boot messages) goes to console.log.
    #    The shell moves itself into our cgroups and then execs nspawn (same PID).
    #    The wrapper records its PID (setsid(1) may fork, so $! is not reliable).
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; for d in $2; do echo $$ > "$d/cgroup.procs"; done
                    shift 2; exec "$@"' \
        sdbox-wrap "$state/nspawn.pid" "${cgdirs[*]}" env "${nspawn_env[@]}" systemd-nspawn "${nspawn_opts[@]}" \
        -b -- systemd.show_status=1 systemd.log_color=0 \
        </dev/null >"$state/console.log" 2>&1 &

    for _ in $(seq 100); do [ -s "$state/nspawn.pid" ] && break; sleep 0.05; done
    local npid; npid=$(cat "$state/nspawn.pid") || die "nspawn did not start"
    local nstart; nstart=$(pid_start "$npid")
    echo "NSPAWN_PID=$npid NSPAWN_START=$nstart" >>"$state/box.env"

    # 4. Find the container's PID 1 (a direct child of nspawn running systemd in a new pid ns).
    local leader="" c deadline=$((SECONDS + 30))
    while [ -z "$leader" ]; do
        pid_alive "$npid" "$nstart" || { cat "$state/console.log" >&2; die "systemd-nspawn exited during start-up"; }
        for c in $(children_of "$npid"); do
            if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] &&
                [ "$(readlink "/proc/$c/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]; then
                leader=$c
            fi
        done
        [ -n "$leader" ] && break
        [ $SECONDS -lt $deadline ] || { cat "$state/console.log" >&2; die "no container init found"; }
        sleep 0.1
    done
    echo "LEADER=$leader LEADER_START=$(pid_start "$leader")" >>"$state/box.env"

    # 5. Wait until systemd says it finished booting (running, or degraded = some unit failed).
    #    `is-system-running --wait` blocks until boot is over; it runs under timeout(1)
    #    *inside* the box so that a hanging boot cannot block us beyond BOOT_TIMEOUT.
    #    Before systemd's private bus socket exists it fails at once -> retry.
    local st="" deadline=$((SECONDS + BOOT_TIMEOUT))
    while :; do
        st=$(box_exec "$state" timeout 5 systemctl is-system-running --wait 2>/dev/null </dev/null) || true
        case $st in running | degraded) break ;; esac
        pid_alive "$npid" "$nstart" || { cat "$state/console.log" >&2; die "container died while booting"; }
        [ $SECONDS -lt $deadline ] || { tail -40 "$state/console.log" >&2; die "boot timeout (state '$st')"; }
        sleep 0.2
    done
    log "box $name booted in $(elapsed "$t0") s: system is '$st' (nspawn pid $npid, container init pid $leader, state $state)"
    if [ "$st" = degraded ]; then
        (box_exec "$state" systemctl --failed --no-legend --no-pager) </dev/null >&2 || true
    fi
    [ "${UP_STANDALONE:-0}" = 1 ] && trap - EXIT
    return 0
}

# ---------------------------------------------------------------- exec / cp
# Run a command inside: enter all namespaces of the container's PID 1 and chroot to its
# root; clean environment like a root login would have. Always called in a subshell or as
# the last action of the script, because it exec()s nsenter.
box_exec() {
    local state=$1; shift
    local LEADER LEADER_START NSPAWN_PID NSPAWN_START NAME ROOTMODE CGDIRS
    # shellcheck disable=SC1091
    . "$state/box.env"
    [ -n "${LEADER:-}" ] || die "box not started"
    pid_alive "$LEADER" "$LEADER_START" || die "box is not running (container init $LEADER gone)"
    # Record our PID (nsenter keeps it through exec) so `down` can kill a still-running
    # command first. Needed because systemd-shutdown SIGSTOPs every process in the
    # container; nsenter (outside the container) then stops itself too and never reaps
    # its child -> shutdown waits 90 s for that zombie.
    local me=$BASHPID   # (inside $(...) BASHPID would be that subshell's PID)
    echo "$me $(pid_start "$me")" >>"$state/exec.pids"
    exec nsenter --target "$LEADER" --mount --uts --ipc --net --pid --cgroup --root --wd \
        env -i PATH="$CTR_PATH" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive \
        SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}

cmd_cp() {
    local state=$1 src=$2 dst=$3
    [ -f "$state/box.env" ] || die "$state is not a box state dir"
    # The overlay mount is shared with the container, so writing through the host side
    # of the mount is immediately visible inside.
    mkdir -p "$state/root/$(dirname "$dst")"
    cp -a "$src" "$state/root/$dst"
}

# ---------------------------------------------------------------- down
cmd_down() {
    local state=$1
    [ -d "$state" ] || return 0
    if [ ! -f "$state/box.env" ]; then
        # half-created state (failure very early in 'up'): just unmount and delete
        mountpoint -q "$state/root" 2>/dev/null && umount "$state/root"
        rm -rf --one-file-system "$state"
        return 0
    fi
    local LEADER="" LEADER_START="" NSPAWN_PID="" NSPAWN_START="" NAME="" ROOTMODE="" CGDIRS=""
    # shellcheck disable=SC1091
    . "$state/box.env"
    local t0; t0=$(now)
    # Stop commands still running via `exec` before shutting down. For each nsenter we
    # started (PID + start time recorded in exec.pids) SIGKILL its direct child, i.e. the
    # command inside the container, and let nsenter reap it and exit. (Killing nsenter
    # instead would orphan the command to the HOST's PID 1, which here reaps zombies only
    # every ~10 s, and systemd-shutdown in the box waits for that zombie.) Grandchildren
    # are reparented to the box's systemd and terminated by the normal shutdown.
    local epid estart c waited
    if [ -f "$state/exec.pids" ]; then
        while read -r epid estart; do
            pid_alive "$epid" "$estart" || continue
            kill -CONT "$epid" 2>/dev/null || true       # in case it stopped itself
            for c in $(children_of "$epid"); do kill -KILL "$c" 2>/dev/null || true; done
            waited=0
            while pid_running "$epid" "$estart" && [ $waited -lt 20 ]; do
                sleep 0.1; waited=$((waited + 1))
            done
            # still running after 2 s -> kill nsenter itself
            pid_running "$epid" "$estart" && kill -KILL "$epid" 2>/dev/null
        done <"$state/exec.pids"
    fi
    if pid_alive "$NSPAWN_PID" "$NSPAWN_START"; then
        # First SIGTERM: nspawn asks the container's systemd for a clean poweroff.
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_TIMEOUT))
        while pid_alive "$NSPAWN_PID" "$NSPAWN_START" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        if pid_alive "$NSPAWN_PID" "$NSPAWN_START"; then
            log "clean shutdown timed out, killing"
            kill -TERM "$NSPAWN_PID" 2>/dev/null || true   # 2nd SIGTERM = immediate termination
            sleep 2
            pid_alive "$NSPAWN_PID" "$NSPAWN_START" && kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        fi
    fi
    # If the container init survived (nspawn SIGKILLed), SIGKILL to a pid-ns init kills the
    # whole pid namespace.
    if pid_alive "$LEADER" "$LEADER_START"; then
        kill -KILL "$LEADER" 2>/dev/null || true
        sleep 0.5
    fi
    # Unmount the overlay (lazily if something still holds it).
    if [ "$ROOTMODE" = overlay ] && mountpoint -q "$state/root"; then
        umount "$state/root" 2>/dev/null || umount -l "$state/root"
    fi
    # Remove our cgroups, deepest first (they are empty once all processes are gone).
    local d
    for d in $CGDIRS; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        [ -d "$d" ] && log "WARNING: could not remove cgroup $d (processes left?)"
    done
    # nspawn (no tmpfs /run on this host) may leave an empty propagation dir behind.
    [ -n "$NAME" ] && rmdir "/run/systemd/nspawn/propagate/$NAME" 2>/dev/null || true
    if [ -n "${SDBOX_CONSOLE_LOG:-}" ] && [ -f "$state/console.log" ]; then
        cp "$state/console.log" "$SDBOX_CONSOLE_LOG" || true
    fi
    if mountpoint -q "$state/root" 2>/dev/null; then
        die "$state/root still mounted, not deleting $state"
    fi
    rm -rf --one-file-system "$state"
    log "box ${NAME:-?} torn down in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- run (all in one)
cmd_run() {
    local cache=$1; shift
    local copies=() binds=()
    while [ $# -gt 0 ]; do
        case $1 in
            --copy) copies+=("$2"); shift 2 ;;
            --bind | --bind-ro) binds+=("$1" "$2"); shift 2 ;;
            --) shift; break ;;
            *) die "run: unknown option $1 (did you forget '--' before the command?)" ;;
        esac
    done
    [ $# -gt 0 ] || die "run: no command given"
    RUN_STATE=$(mktemp -d "${TMPDIR:-/tmp}/sdbox-state.XXXXXX")
    rmdir "$RUN_STATE"
    # Tear down whatever happens (error, Ctrl-C, CI timeout SIGTERM).
    # Signals are ignored while tearing down: tools like timeout(1) send SIGTERM twice
    # (to the child and to its process group) and a 2nd trap run would abort cleanup.
    trap 'trap "" INT TERM HUP; cmd_down "$RUN_STATE"' EXIT
    trap 'trap "" INT TERM HUP; exit 130' INT
    trap 'trap "" INT TERM HUP; exit 143' TERM
    trap 'trap "" INT TERM HUP; exit 129' HUP
    cmd_up "$cache" "$RUN_STATE" "${binds[@]}"
    local cp
    for cp in "${copies[@]}"; do cmd_cp "$RUN_STATE" "${cp%%:*}" "${cp#*:}"; done
    # Run the command as a background job and `wait` for it: bash only runs the INT/TERM
    # traps (-> teardown) after a foreground child exits, but interrupts `wait` at once.
    # "<&0" keeps the caller's stdin (background jobs would get /dev/null otherwise).
    local rc=0
    box_exec "$RUN_STATE" "$@" <&0 &
    wait $! || rc=$?
    log "command exited with $rc"
    return $rc
}

# ---------------------------------------------------------------- main
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
sub=$1; shift
case $sub in
    build) [ $# -eq 1 ] || usage; need_host_tools; build_rootfs "$1" ;;
    up) [ $# -ge 2 ] || usage; UP_STANDALONE=1 cmd_up "$@" ;;
    exec) [ $# -ge 2 ] || usage; st=$1; shift; [ "$1" = -- ] && shift; box_exec "$st" "$@" ;;
    cp) [ $# -eq 3 ] || usage; cmd_cp "$@" ;;
    down) [ $# -eq 1 ] || usage; cmd_down "$1" ;;
    run) [ $# -ge 2 ] || usage; cmd_run "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
