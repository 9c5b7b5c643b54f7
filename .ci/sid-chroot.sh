#!/usr/bin/env bash
# A Debian sid chroot with the newest CPythons as the distribution ships them
# (python3.14, python3.15, and python3.14-dbg, a --with-pydebug build), for CI's matrix.
#
#   .ci/sid-chroot.sh ensure              create it, or repair it, and mount what cargo needs
#   .ci/sid-chroot.sh run [VAR=VAL...] CMD [ARG...]
#                                         ensure, then run CMD inside, in this repository,
#                                         with a clean environment plus VAR=VAL...
#   .ci/sid-chroot.sh umount              unmount everything mounted under it
#
# Idempotent: a healthy chroot is reused as it is; missing packages are installed,
# missing mounts made. It needs root and nothing else: no variable, no terminal.
# The Debian mirror is the one this machine's apt uses (/etc/apt/sources.list.d/*.sources
# or /etc/apt/sources.list). The host's cargo and rustup are bind-mounted at their own
# paths and run inside as they are (binaries built on an older glibc run on a newer one);
# so is this repository, so that target/ is shared with the host.
#
# Environment (all optional):
#   PARPY_SID_ROOT     where the chroot lives (default /srv/sid)
#   PARPY_SID_MIRROR   a Debian mirror URI, instead of the one apt uses
set -euo pipefail

root=${PARPY_SID_ROOT:-/srv/sid}
repo=$(cd "$(dirname "$0")/.." && pwd -P)
cargo_home=${CARGO_HOME:-${HOME:-/root}/.cargo}
rustup_home=${RUSTUP_HOME:-${HOME:-/root}/.rustup}
packages=(python3.14 libpython3.14-dev python3.14-venv
    python3.15 libpython3.15-dev python3.15-venv
    python3.14-dbg libpython3.14-dbg
    libpython3.14-testsuite libpython3.15-testsuite
    gcc libc6-dev ca-certificates binutils gdb)
# Each interpreter of the matrix, with the shared libpython it must come with.
interpreters=("python3.14:libpython3.14.so" "python3.15:libpython3.15.so" "python3.14d:libpython3.14d.so")

say() { printf 'sid-chroot: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount do)"

# The URI of this machine's main Debian archive (not the security one).
mirror() {
    if [ -n "${PARPY_SID_MIRROR:-}" ]; then
        echo "$PARPY_SID_MIRROR"
        return
    fi
    local uri=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        # deb822 stanzas: the URIs of the first "Types: deb" stanza whose suites are not -security.
        uri=$(awk -v RS= '/(^|\n)Types:([^\n]*[ \t])?deb([ \t\n]|$)/ && !/Suites:[^\n]*-security/ {
                  if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
                      s = substr($0, RSTART, RLENGTH); sub(/^\n?URIs:[ \t]*/, "", s); print s; exit
                  } }' /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {
                  for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "no Debian mirror in /etc/apt; set PARPY_SID_MIRROR=URI"
    echo "$uri"
}

# Every mount point at or under $1, deepest first.
mounts_under() {
    awk -v p="$1" '$2 == p || index($2, p "/") == 1 {print $2}' /proc/self/mounts | sort -r
}

unmount_all() {
    local m
    for m in $(mounts_under "$1"); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    [ -z "$(mounts_under "$1")" ] || die "cannot unmount everything under $1"
}

# Is the chroot complete: every interpreter runs, every libpython is there?
healthy() {
    [ -x "$root/usr/bin/apt-get" ] || return 1
    local pair exe lib
    for pair in "${interpreters[@]}"; do
        exe=${pair%%:*} lib=${pair#*:}
        chroot "$root" "/usr/bin/$exe" -c 'import sysconfig, venv, ensurepip' >/dev/null 2>&1 || return 1
        [ -e "$root/usr/lib/$(uname -m)-linux-gnu/$lib" ] || return 1
    done
    chroot "$root" /usr/bin/gcc --version >/dev/null 2>&1 || return 1
    # Every package of the list, installed (a chroot made with a shorter list gets the rest).
    ! chroot "$root" dpkg-query -W -f='${db:Status-Abbrev}\n' "${packages[@]}" 2>&1 | grep -qv '^ii'
}

# What the host's network set-up needs inside too: DNS, and the certificate
# authorities the host trusts beyond Debian's (a proxy's), for pip.
sync_host_config() {
    cmp -s /etc/resolv.conf "$root/etc/resolv.conf" || cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    if [ -f /etc/pip.conf ]; then
        cmp -s /etc/pip.conf "$root/etc/pip.conf" || cp /etc/pip.conf "$root/etc/pip.conf"
    fi
    local cas=/usr/local/share/ca-certificates
    if [ -d "$cas" ] && [ -n "$(ls -A "$cas")" ] && ! diff -rq "$cas" "$root$cas" >/dev/null 2>&1; then
        mkdir -p "$root$cas"
        cp -a "$cas/." "$root$cas/"
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin update-ca-certificates >/dev/null 2>&1 || true
    fi
}

create() {
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap </dev/null >/dev/null
    fi
    local uri new
    uri=$(mirror)
    new="$root.new"
    # A half-made attempt: unmount first, so that rm never reaches a bind-mounted host folder.
    if [ -e "$new" ]; then
        unmount_all "$new"
        rm -rf "$new"
    fi
    mkdir -p "$(dirname "$root")"
    say "debootstrap sid into $root from $uri (about 1 minute and 650 MB)"
    local list
    list=$(
        IFS=,
        echo "${packages[*]}"
    )
    if ! debootstrap --variant=minbase --include="$list" sid "$new" "$uri" \
        </dev/null >"$root.debootstrap.log" 2>&1; then
        tail -n 20 "$root.debootstrap.log" >&2
        unmount_all "$new"
        die "debootstrap failed (whole log: $root.debootstrap.log)"
    fi
    unmount_all "$new"
    mv "$new" "$root"
}

repair() {
    say "installing what $root lacks"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    # Debian's mirror here can serve a sid whose Release file is past its Valid-Until
    # date (debootstrap does not check it; apt does).
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get -o Acquire::Check-Valid-Until=false update -qq && apt-get install -y -qq ${packages[*]}" </dev/null >&2
}

# Mounts $2 (a host path) at the same path inside, unless it is already visible there.
bind_same() {
    local src=$1 dst="$root$1"
    [ -d "$src" ] || return 0
    if [ -d "$dst" ] && [ "$(stat -c %d:%i "$src")" = "$(stat -c %d:%i "$dst")" ]; then
        return 0
    fi
    # A mount left there by an earlier run whose folder is gone (a clone deleted and
    # made again at the same path): mounting over it fails with ENOENT, so take it away.
    if mountpoint -q "$dst" 2>/dev/null || grep -q " $dst " /proc/self/mounts; then
        umount -R "$dst" 2>/dev/null || umount -l "$dst"
    fi
    mkdir -p "$dst"
    mount --bind "$src" "$dst"
    echo "$dst"
}

mount_all() {
    if ! mountpoint -q "$root/proc"; then
        mount -t proc proc "$root/proc"
        echo "$root/proc"
    fi
    # /dev for /dev/null, /dev/urandom and /dev/shm (multiprocessing's semaphores).
    if [ "$(stat -c %d:%i /dev/null)" != "$(stat -c %d:%i "$root/dev/null" 2>/dev/null)" ]; then
        mount --rbind /dev "$root/dev"
        mount --make-rslave "$root/dev"
        echo "$root/dev"
    fi
    bind_same "$repo"
    bind_same "$cargo_home"
    bind_same "$rustup_home"
}

# Is everything in place already (then nothing needs the exclusive lock)?
ready() {
    [ -x "$root/usr/bin/apt-get" ] && healthy || return 1
    mountpoint -q "$root/proc" || return 1
    cmp -s /etc/resolv.conf "$root/etc/resolv.conf" || return 1
    local p
    for p in /dev "$repo" "$cargo_home" "$rustup_home"; do
        [ ! -d "$p" ] || [ "$(stat -c %d:%i "$p")" = "$(stat -c %d:%i "$root$p" 2>/dev/null)" ] || return 1
    done
}

ensure() {
    exec 9>"$root.lock"
    # Others may be inside: a shared lock is enough when all is in place.
    flock -s 9
    if ready; then
        : >"$root.mounted.$$"
        return
    fi
    flock -x 9
    if [ ! -x "$root/usr/bin/apt-get" ]; then
        [ ! -e "$root" ] || [ -z "$(ls -A "$root")" ] ||
            die "$root exists but is no Debian system; move it away or set PARPY_SID_ROOT"
        rmdir "$root" 2>/dev/null || true
        create
    fi
    sync_host_config
    if ! healthy; then
        repair
        sync_host_config
    fi
    healthy || die "$root is still missing an interpreter, libpython or package after apt-get install"
    mount_all >"$root.mounted.$$"
    # Others may use the chroot while this one does: hold a shared lock until done.
    flock -s 9
}

case ${1:-} in
ensure)
    ensure
    rm -f "$root.mounted.$$"
    ;;
run)
    shift
    [ $# -gt 0 ] || die "run: no command"
    ensure
    trap 'rm -f "$root.mounted.$$"' EXIT
    vars=(PATH="$cargo_home/bin:/usr/local/bin:/usr/bin:/bin" HOME="${HOME:-/root}"
        CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" LANG=C.UTF-8 CI="${CI:-}")
    # The host's pip and proxy settings hold inside too.
    while IFS= read -r v; do vars+=("$v"); done < <(env | grep -E '^(PIP_[A-Z_]*|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|[a-z]+_proxy|[A-Z]+_PROXY)=' || true)
    while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do
        vars+=("$1")
        shift
    done
    rc=0
    chroot "$root" /usr/bin/env -i "${vars[@]}" /usr/bin/env -C "$repo" "$@" </dev/null || rc=$?
    # Take back the mounts this run made, unless someone else is inside now.
    if [ -s "$root.mounted.$$" ] && flock -n -x 9; then
        tac "$root.mounted.$$" | while read -r m; do umount -R "$m" 2>/dev/null || umount -l "$m"; done
    fi
    exit $rc
    ;;
umount)
    exec 9>"$root.lock"
    flock -x 9
    unmount_all "$root"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
