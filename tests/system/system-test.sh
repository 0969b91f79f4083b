#!/bin/bash
# tests/system/system-test.sh — CryptoSat's Debian package, tested the way an
# operator uses it, in a real systemd (PID 1) booted with systemd-box.sh.
#
# Usage (as root):
#   tests/system/system-test.sh DEB UPGRADE_DEB [FAKES_BIN]
#     DEB          dist/cryptosat_<version>_amd64.deb            (packaging/build-deb.sh)
#     UPGRADE_DEB  the same binary with a higher package version (build-deb.sh --deb-version)
#     FAKES_BIN    fake Telegram/CoinGlass servers (default target/debug/cryptosat-fakes)
#
# Prints "ok - STEP" or "FAIL - STEP" for every verified step and exits non-zero
# if any failed. The box is always torn down and the fakes stopped. The whole
# run is bounded by SYSTEM_TEST_TIMEOUT seconds (default 540).
#
# Environment knobs:
#   SYSTEM_TEST_CACHE=/var/tmp/cryptosat-sdbox-cache   cached Debian 12 rootfs
#   SYSTEM_TEST_PORT_BASE=18870   fakes listen on 127.0.0.1:BASE (telegram), +1
#                                 (coinglass), +2 (control); the box shares the host's
#                                 network namespace, so the service reaches them there.
#   SYSTEM_TEST_LOG_DIR=DIR       where the box journal is saved (default: a temp dir)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

# ---------------------------------------------------------------- time bound
# Re-exec under timeout(1): a hung step cannot block CI. SIGTERM runs the
# teardown trap; -k kills whatever is left if even the teardown hangs.
if [ -z "${SYSTEM_TEST_INNER:-}" ]; then
    export SYSTEM_TEST_INNER=1
    exec timeout -k 60 "${SYSTEM_TEST_TIMEOUT:-540}" "$0" "$@"
fi

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
deb=$(readlink -f "$1")
upgrade_deb=$(readlink -f "$2")
fakes_bin=$(readlink -f "${3:-$repo/target/debug/cryptosat-fakes}")
for f in "$deb" "$upgrade_deb"; do [ -f "$f" ] || { echo "no such package: $f" >&2; exit 2; }; done
[ -x "$fakes_bin" ] || { echo "fakes binary not executable: $fakes_bin" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 2; }
for t in curl jq dpkg-deb; do
    command -v "$t" >/dev/null || { echo "missing $t (run packaging/ci-deps.sh)" >&2; exit 2; }
done

box=$here/systemd-box.sh
cache=${SYSTEM_TEST_CACHE:-/var/tmp/cryptosat-sdbox-cache}
port_base=${SYSTEM_TEST_PORT_BASE:-18870}
tg_port=$port_base cg_port=$((port_base + 1)) ctl_port=$((port_base + 2))
# A syntactically real but fake token: it must never show up in logs/status.
TOKEN='123456:TESTTOKEN-abcdefghijklmnopqrstuvwxyz012'
API_KEY='cg-test-key-0123456789abcdef'
CHAT=424242
UNIT=cryptosat.service
# procps: a dependency of the package (/bin/kill for ExecReload), baked into the
# cached rootfs so `apt install ./x.deb` needs no network; everything else the
# package needs (systemd, libc) is in the base image.
export SDBOX_EXTRA_PACKAGES=procps

work=$(mktemp -d "${TMPDIR:-/tmp}/cryptosat-systest.XXXXXX")
state=$work/box
log_dir=${SYSTEM_TEST_LOG_DIR:-$work/logs}
mkdir -p "$log_dir"
fakes_pid=
failures=0
t_start=$SECONDS

# ---------------------------------------------------------------- reporting
ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }
# check DESCRIPTION CMD...: ok/FAIL depending on CMD's exit status (its output
# is shown only on failure)
check() {
    local d=$1; shift
    if "$@" >"$work/check.out" 2>&1; then ok "$d"; else sed 's/^/#   /' "$work/check.out" | tail -n 10; fail "$d"; fi
}
# fatal DESCRIPTION: a step the rest depends on failed; stop here
fatal() { fail "$*"; echo "Bail out! later steps need this one"; exit 1; }
note() { echo "# $*"; }

teardown() {
    local rc=$?
    trap '' INT TERM HUP
    if [ -f "$state/box.env" ]; then
        # The box journal disappears with the box: keep it for post-mortems.
        "$box" exec "$state" journalctl --no-pager -o short-precise >"$log_dir/journal.txt" 2>&1 || true
        "$box" down "$state" || true
    fi
    if [ -n "$fakes_pid" ] && kill -0 "$fakes_pid" 2>/dev/null; then
        kill "$fakes_pid" 2>/dev/null || true
        wait "$fakes_pid" 2>/dev/null || true
    fi
    note "box journal: $log_dir/journal.txt; fakes log: $log_dir/fakes.log"
    [ -n "${SYSTEM_TEST_LOG_DIR:-}" ] || note "(temporary: set SYSTEM_TEST_LOG_DIR to keep them)"
    if [ -z "${SYSTEM_TEST_LOG_DIR:-}" ] && [ "$failures" -eq 0 ] && [ "$rc" -eq 0 ]; then
        rm -rf "$work"
    fi
}
trap teardown EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# ---------------------------------------------------------------- helpers
in_box() { "$box" exec "$state" "$@"; }
# in_box_sh SCRIPT: run a shell snippet inside the box (stdin passed through)
in_box_sh() { "$box" exec "$state" sh -c "$1"; }
prop() { in_box systemctl show "$UNIT" -p "$1" --value; }
# wait_until SECONDS CMD...: poll CMD every 0.5 s until it succeeds
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}
cursor() { in_box journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'; }
# journal_since CURSOR [journalctl args]: unit journal after CURSOR
journal_since() { local c=$1; shift; in_box journalctl -u "$UNIT" --no-pager --after-cursor="$c" "$@"; }
journal_has() { journal_since "$1" | grep -F -- "$2" >/dev/null; }
is_running() { [ "$(prop ActiveState)/$(prop SubState)" = active/running ]; }
main_pid() { prop MainPID; }

# toml_set KEY_IN_SECTION SECTION VALUE < in > out: set `KEY = VALUE` in [SECTION]
# (replacing an uncommented KEY line, or adding it right after the header, or
# appending the section).
toml_set() {
    awk -v sec="[$2]" -v key="$1" -v val="$3" '
        function emit() { print key " = " val; done = 1 }
        /^[[:space:]]*\[/ {
            if (insec && !done) emit()
            h = $0; sub(/#.*/, "", h); gsub(/[[:space:]]/, "", h)
            insec = (h == sec)
            print; next
        }
        insec && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { if (!done) emit(); next }
        { print }
        END {
            if (insec && !done) emit()
            if (!done) { print ""; print sec; emit() }
        }'
}
# set_config SECTION KEY VALUE: edit /etc/cryptosat/cryptosat.toml in the box
set_config() {
    in_box cat /etc/cryptosat/cryptosat.toml | toml_set "$2" "$1" "$3" >"$work/cryptosat.toml"
    in_box_sh 'cat > /etc/cryptosat/cryptosat.toml' <"$work/cryptosat.toml"
}
# telegram_send CHAT TEXT: user CHAT writes TEXT to the bot in their private chat
# (each check uses a new chat, so an earlier reply cannot satisfy a later wait)
telegram_send() {
    curl -fsS -X POST "$ctl_url/telegram/message" -H 'Content-Type: application/json' \
        -d "$(jq -nc --argjson c "$1" --arg t "$2" '{chat_id: $c, user_id: $c, text: $t}')" >/dev/null
}
# telegram_wait_reply CHAT SUBSTRING SECONDS: the bot sent CHAT a message containing SUBSTRING
telegram_wait_reply() {
    curl -fsS -G "$ctl_url/telegram/wait_sent" --data-urlencode "chat_id=$1" \
        --data-urlencode "contains=$2" --data-urlencode "timeout_ms=$(($3 * 1000))" \
        --max-time $(($3 + 5)) >"$work/reply.json" 2>/dev/null
}
# start_answered CHAT: /start from a new user CHAT gets a reply
start_answered() { telegram_send "$1" /start && telegram_wait_reply "$1" "" 20; }
token_absent() {
    # journal of the whole box (every field of every entry) and the unit's status
    { in_box journalctl --no-pager -o json; in_box systemctl status "$UNIT" --no-pager -l || true
      in_box systemctl show "$UNIT" --no-pager; } 2>&1 | grep -F -e "$TOKEN" -e "${TOKEN#*:}" >/dev/null && return 1
    return 0
}

echo "# CryptoSat system test: $(basename "$deb") -> $(basename "$upgrade_deb")"

# ---------------------------------------------------------------- 0. fakes + box
"$fakes_bin" --telegram-port "$tg_port" --coinglass-port "$cg_port" --control-port "$ctl_port" \
    --token "$TOKEN" --api-key "$API_KEY" >"$log_dir/fakes.log" 2>&1 &
fakes_pid=$!
wait_until 20 grep -q '^READY ' "$log_dir/fakes.log" || { cat "$log_dir/fakes.log" >&2; fatal "fake servers start"; }
ready_line=$(grep -m1 '^READY ' "$log_dir/fakes.log")
tg_url=$(sed -n 's/.* telegram=\([^ ]*\).*/\1/p' <<<"$ready_line")
cg_url=$(sed -n 's/.* coinglass=\([^ ]*\).*/\1/p' <<<"$ready_line")
ctl_url=$(sed -n 's/.* control=\([^ ]*\).*/\1/p' <<<"$ready_line")
ok "fake Telegram ($tg_url) and CoinGlass ($cg_url) servers run on the host"

"$box" up "$cache" "$state" 2>"$log_dir/box-up.log" || { cat "$log_dir/box-up.log" >&2; fatal "boot Debian 12 with systemd as PID 1"; }
ok "booted Debian 12 with systemd $(in_box systemctl --version | awk 'NR==1{print $2}') as PID 1 ($((SECONDS - t_start)) s)"

# ---------------------------------------------------------------- 1. install
"$box" cp "$state" "$deb" "/root/$(basename "$deb")"
"$box" cp "$state" "$upgrade_deb" "/root/upgrade/$(basename "$upgrade_deb")"
if in_box_sh "cd /root && apt install -y ./$(basename "$deb")" >"$log_dir/install.log" 2>&1; then
    ok "apt install ./$(basename "$deb")"
else
    cat "$log_dir/install.log"; fatal "apt install ./$(basename "$deb")"
fi
check "postinst tells the operator to put the token into /etc/cryptosat/telegram-token" \
    grep -q '/etc/cryptosat/telegram-token' "$log_dir/install.log"
check "cryptosat.service is enabled but not started" \
    test "$(in_box systemctl is-enabled "$UNIT" || true)/$(prop ActiveState)" = enabled/inactive
check "system user cryptosat exists (sysusers.d)" in_box getent passwd cryptosat
secrets_ok=1
for f in telegram-token coinglass-api-key; do
    st=$(in_box stat -c '%a %U:%G %s' "/etc/cryptosat/$f" 2>/dev/null || echo missing)
    [ "$st" = "600 root:root 0" ] || { secrets_ok=0; note "/etc/cryptosat/$f: $st"; }
done
check "empty secret files /etc/cryptosat/{telegram-token,coinglass-api-key} are 0600 root:root" test $secrets_ok = 1
check "/etc/cryptosat/cryptosat.toml is a conffile" \
    sh -c "'$box' exec '$state' dpkg-query -W -f='\${Conffiles}' cryptosat | grep -q ' /etc/cryptosat/cryptosat.toml '"
# systemd-analyze verify exits 0 even on unknown directives: any output line is
# a failure. --man=no: the box has no man(1); lintian checks the man page.
in_box systemd-analyze verify --man=no "$UNIT" >"$work/verify.txt" 2>&1 || true
if [ ! -s "$work/verify.txt" ]; then ok "systemd-analyze verify $UNIT: no warnings"
else cat "$work/verify.txt"; fail "systemd-analyze verify $UNIT: no warnings"; fi
check "cryptosat --version runs" in_box cryptosat --version

# ---------------------------------------------------------------- 2. first start, no token
c=$(cursor)
if in_box timeout 60 systemctl start "$UNIT" >/dev/null 2>&1; then
    fail "first start without a token fails"
else
    ok "first start without a token fails"
fi
wait_until 10 test "$(prop ActiveState)" = failed || true
check "exit status 78 (EX_CONFIG), unit failed, not scheduled for restart" \
    test "$(prop ExecMainStatus)/$(prop ActiveState)/$(prop SubState)" = 78/failed/failed
check "no restart loop (NRestarts=0)" test "$(prop NRestarts)" = 0
# The bot's own line (identifier cryptosat, not systemd) must name the file.
if journal_since "$c" -o json | jq -r 'select(.SYSLOG_IDENTIFIER == "cryptosat") | .MESSAGE | strings' |
    grep -F '/etc/cryptosat/telegram-token' >"$work/msg.txt"; then
    ok "journal says which file to edit: $(head -n 1 "$work/msg.txt")"
else
    journal_since "$c" -o cat | tail -n 5; fail "journal says which file to edit (/etc/cryptosat/telegram-token)"
fi
check "no bare systemd credential error" \
    sh -c "! '$box' exec '$state' journalctl -u $UNIT --no-pager --after-cursor='$c' | grep -qE '243/CREDENTIALS|Failed to set up credentials'"

# ---------------------------------------------------------------- 3. configure + start
printf '%s\n' "$TOKEN" | in_box_sh 'cat > /etc/cryptosat/telegram-token'
printf '%s\n' "$API_KEY" | in_box_sh 'cat > /etc/cryptosat/coinglass-api-key'
set_config telegram api_url "\"$tg_url\""
set_config coinglass base_url "\"$cg_url\""
check "secrets still 0600 root:root after writing them" \
    test "$(in_box stat -c '%a %U' /etc/cryptosat/telegram-token /etc/cryptosat/coinglass-api-key | sort -u)" = "600 root"
in_box systemctl reset-failed "$UNIT"
c=$(cursor)
if in_box timeout 120 systemctl start "$UNIT" 2>"$work/start.err"; then
    ok "systemctl start cryptosat (READY=1 received)"
else
    cat "$work/start.err"; journal_since "$c" -o cat | tail -n 20
    fatal "systemctl start cryptosat (READY=1 received)"
fi
in_box systemctl status "$UNIT" --no-pager -l >"$work/status.txt" 2>&1 || true
check "systemctl status: active (running)" grep -q 'Active: active (running)' "$work/status.txt"
status_line=$(sed -n 's/^ *Status: //p' "$work/status.txt")
if [ -n "$status_line" ]; then ok "systemctl status has a Status: line: $status_line"
else cat "$work/status.txt"; fail "systemctl status has a Status: line"; fi
check "runs as user cryptosat" test "$(in_box stat -c %U "/proc/$(main_pid)")" = cryptosat

# ---------------------------------------------------------------- 4. /start round trip
if start_answered "$CHAT"; then
    ok "/start sent through the fake Telegram gets a reply: $(jq -r '.text // .' "$work/reply.json" | head -c 100 | tr '\n' ' ')"
else
    fail "/start sent through the fake Telegram gets a reply"
fi

# ---------------------------------------------------------------- 5. structured journal, no token
wait_until 10 sh -c "'$box' exec '$state' journalctl -u $UNIT -o json --no-pager | jq -e -s 'any(.[]; .CHAT_ID == \"$CHAT\")' >/dev/null" || true
if in_box journalctl -u "$UNIT" -o json --no-pager | jq -e -s "any(.[]; .CHAT_ID == \"$CHAT\" and .SYSLOG_IDENTIFIER == \"cryptosat\")" >/dev/null; then
    ok "journalctl -u cryptosat -o json: the handled command carries CHAT_ID=$CHAT (SYSLOG_IDENTIFIER=cryptosat)"
else
    in_box journalctl -u "$UNIT" -o json --no-pager | jq -c '{SYSLOG_IDENTIFIER, MESSAGE, CHAT_ID}' | tail -n 5
    fail "journalctl -u cryptosat -o json: the handled command carries CHAT_ID=$CHAT"
fi
check "the token appears nowhere in the journal or in systemctl status/show" token_absent

# ---------------------------------------------------------------- 6. second instance refused
pid_before=$(main_pid)
set +e
in_box env CRYPTOSAT_TELEGRAM_TOKEN="$TOKEN" CRYPTOSAT_COINGLASS_API_KEY="$API_KEY" \
    timeout 20 cryptosat run >"$work/manual.txt" 2>&1
rc=$?
set -e
if [ $rc = 75 ] && grep -q 'cryptosat.service' "$work/manual.txt"; then
    ok "cryptosat run by hand is refused (exit 75): $(grep -m1 'cryptosat.service' "$work/manual.txt")"
else
    head -n 5 "$work/manual.txt"; fail "cryptosat run by hand is refused with exit 75 naming cryptosat.service (got exit $rc)"
fi
check "the service is unaffected (same MainPID, running)" \
    sh -c "[ \"\$('$box' exec '$state' systemctl show $UNIT -p MainPID --value)\" = '$pid_before' ]"

# ---------------------------------------------------------------- 7. watchdog
# Lower WatchdogSec for this step only (a runtime drop-in, gone with the next
# daemon-reload after its removal), so the test waits seconds, not 30+ s.
in_box mkdir -p /run/systemd/system/cryptosat.service.d
printf '[Service]\nWatchdogSec=4\n' | in_box_sh 'cat > /run/systemd/system/cryptosat.service.d/50-systemtest-watchdog.conf'
in_box systemctl daemon-reload
in_box timeout 120 systemctl restart "$UNIT" || fail "restart with WatchdogSec=4"
n0=$(prop NRestarts)
p0=$(main_pid)
c=$(cursor)
in_box kill -STOP "$p0"
note "SIGSTOP sent to main PID $p0"
if wait_until 20 journal_has "$c" "Watchdog timeout"; then
    ok "systemd logs a watchdog timeout: $(journal_since "$c" -o cat | grep -m1 'Watchdog timeout')"
else
    fail "systemd logs a watchdog timeout"
fi
if wait_until 40 sh -c "[ \"\$('$box' exec '$state' systemctl show $UNIT -p NRestarts --value)\" -gt $n0 ]" &&
    wait_until 60 is_running; then
    ok "restarted by systemd (NRestarts $n0 -> $(prop NRestarts)) and active (running) again, MainPID $p0 -> $(main_pid)"
else
    fail "restarted by systemd and active (running) again (NRestarts=$(prop NRestarts), state $(prop ActiveState)/$(prop SubState))"
fi
check "healthy after the watchdog restart: /start answered" start_answered $((CHAT + 1))
in_box rm -f /run/systemd/system/cryptosat.service.d/50-systemtest-watchdog.conf
in_box systemctl daemon-reload
in_box timeout 120 systemctl restart "$UNIT" || fail "restart with the packaged WatchdogSec"
check "packaged WatchdogSec=30s back in force" test "$(prop WatchdogUSec)" = 30s

# ---------------------------------------------------------------- 8. reload
# systemd logs the notifications it receives at debug level: this is how we see
# RELOADING=1 / STOPPING=1 arrive from the main process.
in_box systemd-analyze log-level debug
pid_before=$(main_pid)
set_config service log_level '"debug"'
c=$(cursor)
if in_box timeout 60 systemctl reload "$UNIT"; then ok "systemctl reload cryptosat (check-config passed)"
else fail "systemctl reload cryptosat"; fi
if wait_until 20 journal_has "$c" "configuration reloaded"; then
    ok "reload applied: journal shows 'configuration reloaded'"
else
    journal_since "$c" -o cat | tail -n 10; fail "reload applied: journal shows 'configuration reloaded'"
fi
check "reload sent RELOADING=1 then READY=1" sh -c "'$box' exec '$state' journalctl -u $UNIT --no-pager --after-cursor='$c' -o cat | grep -q 'RELOADING=1'"
check "reload kept the process (MainPID $pid_before)" test "$(main_pid)" = "$pid_before"
# A broken config must be refused by ExecReload's check-config, not loaded.
set_config service no_such_key_systemtest true
c=$(cursor)
if in_box timeout 60 systemctl reload "$UNIT" >/dev/null 2>&1; then
    fail "reload with an invalid config is refused"
elif journal_since "$c" -o cat | grep -q 'no_such_key_systemtest'; then
    ok "reload with an invalid config is refused by check-config, naming the bad key"
else
    journal_since "$c" -o cat | grep -v 'notification message' | tail -n 5
    fail "reload with an invalid config is refused by check-config, naming the bad key"
fi
check "service still running after the refused reload" is_running
in_box_sh 'grep -v "^no_such_key_systemtest" /etc/cryptosat/cryptosat.toml > /etc/cryptosat/cryptosat.toml.new && cat /etc/cryptosat/cryptosat.toml.new > /etc/cryptosat/cryptosat.toml && rm /etc/cryptosat/cryptosat.toml.new'
check "config valid again" in_box timeout 60 systemctl reload "$UNIT"

# ---------------------------------------------------------------- 9. stop
c=$(cursor)
t0=$SECONDS
in_box timeout 60 systemctl stop "$UNIT" || fail "systemctl stop cryptosat"
took=$((SECONDS - t0))
check "stop: STOPPING=1 sent" sh -c "'$box' exec '$state' journalctl -u $UNIT --no-pager --after-cursor='$c' -o cat | grep -q 'STOPPING=1'"
check "stop: clean exit (status 0, result success) in ${took}s (< TimeoutStopSec=30s)" \
    test "$(prop ExecMainStatus)/$(prop Result)/$((took < 30))" = 0/success/1
check "stop: no SIGKILL needed" sh -c "! '$box' exec '$state' journalctl -u $UNIT --no-pager --after-cursor='$c' -o cat | grep -qE 'stop-sigterm.*timed out|final-sigkill'"
check "stop: status inactive" test "$(in_box systemctl is-active "$UNIT" || true)" = inactive
in_box systemd-analyze log-level info

# ---------------------------------------------------------------- 10. security
in_box systemd-analyze security "$UNIT" --no-pager >"$work/security.txt" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for cryptosat.service: \([0-9.]*\).*/\1/p' "$work/security.txt")
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    ok "systemd-analyze security cryptosat: exposure $score (bound 2.0, goal 1.0)"
else
    tail -n 20 "$work/security.txt"; fail "systemd-analyze security cryptosat: exposure ${score:-?} <= 2.0"
fi

# ---------------------------------------------------------------- 11. upgrade
in_box timeout 120 systemctl start "$UNIT" || fail "start before upgrade"
pid_before=$(main_pid)
db_before=$(in_box stat -c '%i %U' /var/lib/cryptosat/cryptosat.db 2>/dev/null || echo missing)
note "before upgrade: $(in_box dpkg-query -W cryptosat), MainPID $pid_before, db (inode owner): $db_before"
if in_box_sh "cd /root/upgrade && apt install -y ./$(basename "$upgrade_deb")" >"$log_dir/upgrade.log" 2>&1; then
    ok "apt install ./$(basename "$upgrade_deb") (upgrade)"
else
    cat "$log_dir/upgrade.log"; fail "apt install ./$(basename "$upgrade_deb") (upgrade)"
fi
new_version=$(dpkg-deb -f "$upgrade_deb" Version)
check "installed version is now $new_version" test "$(in_box dpkg-query -W -f='${Version}' cryptosat)" = "$new_version"
wait_until 60 is_running || true
check "upgrade restarted the running service (MainPID $pid_before -> $(main_pid))" \
    sh -c "[ \"\$('$box' exec '$state' systemctl show $UNIT -p SubState --value)\" = running ] && [ \"\$('$box' exec '$state' systemctl show $UNIT -p MainPID --value)\" != '$pid_before' ]"
check "upgrade kept the configuration (fake URLs, log_level)" \
    sh -c "'$box' exec '$state' cat /etc/cryptosat/cryptosat.toml | grep -qF '$tg_url' && '$box' exec '$state' cat /etc/cryptosat/cryptosat.toml | grep -q 'log_level = \"debug\"'"
check "upgrade kept the secrets" test "$(in_box cat /etc/cryptosat/telegram-token)" = "$TOKEN"
check "upgrade kept the state (/var/lib/cryptosat/cryptosat.db: $db_before)" \
    test "$(in_box stat -c '%i %U' /var/lib/cryptosat/cryptosat.db 2>/dev/null || echo missing)" = "$db_before"
check "still enabled after upgrade" test "$(in_box systemctl is-enabled "$UNIT" || true)" = enabled
check "answers /start after the upgrade" start_answered $((CHAT + 2))

# ---------------------------------------------------------------- 12. purge
if in_box apt-get purge -y cryptosat >"$log_dir/purge.log" 2>&1; then ok "apt purge cryptosat"
else cat "$log_dir/purge.log"; fail "apt purge cryptosat"; fi
check "service stopped by removal" sh -c "! '$box' exec '$state' pgrep -x cryptosat >/dev/null"
left=$(in_box_sh 'for p in /etc/cryptosat /var/lib/cryptosat /run/cryptosat /usr/bin/cryptosat \
        /usr/lib/systemd/system/cryptosat.service /etc/systemd/system/multi-user.target.wants/cryptosat.service \
        /usr/lib/sysusers.d/cryptosat.conf; do [ -e "$p" ] && echo "$p"; done
    uid=$(id -u cryptosat 2>/dev/null) && find / -xdev \( -uid "$uid" -o -gid "$uid" \) -print 2>/dev/null
    true')
if [ -z "$left" ]; then ok "purge left nothing behind (config, secrets, state, lock dir, unit, files of user cryptosat)"
else fail "purge left nothing behind; left: $(echo $left)"; fi
check "unit no longer known to systemd" \
    test "$(in_box systemctl show "$UNIT" -p LoadState --value)" = not-found

# ---------------------------------------------------------------- summary
echo "# $((SECONDS - t_start)) s"
if [ "$failures" -eq 0 ]; then
    echo "# ALL OK"
else
    echo "# $failures step(s) FAILED"
    exit 1
fi
