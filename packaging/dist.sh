#!/usr/bin/env bash
# Builds parpy's relocatable distribution: a tarball and a Debian package.
#
#   packaging/dist.sh [OUT_DIR]                      (default: dist/)
#
# writes
#   OUT_DIR/parpy-<version>-<pytag>-<arch>-linux.tar.gz, for example
#       parpy-0.1.0-cp314-x86_64-linux.tar.gz (<pytag>: cp3XY, plus the ABI flags of a
#       debug build, cp314d), one folder of the same name holding
#       bin/parpy                    finds ../lib/libpython through its rpath, $ORIGIN/../lib
#       lib/libpython3.X.so.1.0      the libpython that parpy was built against
#       lib/python3.X/               its standard library, less the test suite
#                                    (packaging/stdlib-exclude), lib-dynload/ included
#       lib/parpy/parpy-bundle-stub  the launcher at the front of `parpy bundle` files
#   OUT_DIR/parpy_<version>+<pytag>_<arch>.deb, the same tree as /opt/parpy, with /usr/bin/parpy
#
# Unpacked anywhere, bin/parpy needs no Python on the machine: CPython finds
# its standard library by searching up from the executable for lib/python3.X/os.py.
#
# Environment:
#   PARPY_BIN, PARPY_STUB  use these binaries (default: `cargo build --release`)
#   PARPY_DIST_STRIP=0     keep the debug information of libpython and extension modules
#   PARPY_DIST_DEB=0       no .deb
#   PARPY_DIST_GZIP=N      gzip level of both files, 1 (fast) to 9 (default 6)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { printf 'dist.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
[ -n "$version" ] || die "no version in Cargo.toml"
target=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)
[ -n "$target" ] || target="$(uname -m)-unknown-linux-gnu"
machine=${target%%-*}

if [ -z "${PARPY_BIN:-}" ]; then
    say "cargo build --release"
    (cd "$root" && cargo build --release --bins)
    PARPY_BIN=${CARGO_TARGET_DIR:-$root/target}/release/parpy
fi
PARPY_STUB=${PARPY_STUB:-$(dirname "$PARPY_BIN")/parpy-bundle-stub}
[ -x "$PARPY_BIN" ] || die "no parpy binary at $PARPY_BIN"
[ -x "$PARPY_STUB" ] || die "no bundle launcher at $PARPY_STUB"

# Ask parpy where its runtime is: the standard library, and the libpython it has
# loaded (none when it links a distribution's static libpython, build/static_link.rs).
probe='import sys, sysconfig
print(sysconfig.get_path("stdlib"))
print("%d.%d" % sys.version_info[:2])
print("cp%d%d%s" % (sys.version_info[:2] + (getattr(sys, "abiflags", ""),)))
maps = [l.split(None, 5) for l in open("/proc/self/maps")]
print(next((m[5].strip() for m in maps if len(m) == 6 and m[5].strip().rsplit("/", 1)[-1].startswith("libpython")), ""))
# site-packages, or dist-packages where the distribution patched site.py (Debian)
import site
lib = "/@prefix@/lib/python%d.%d/" % sys.version_info[:2]
print(next((p[len(lib):] for p in site.getsitepackages(["/@prefix@"]) if p.startswith(lib)), "site-packages"))'
info=$(env -u PYTHONHOME -u PYTHONPATH "$PARPY_BIN" -I -S -c "$probe") || die "$PARPY_BIN does not run"
stdlib=$(sed -n 1p <<<"$info")
pyver=$(sed -n 2p <<<"$info")
pytag=$(sed -n 3p <<<"$info")
libpython=$(sed -n 4p <<<"$info")
site_dir=$(sed -n 5p <<<"$info")
[ -f "$stdlib/os.py" ] || die "no standard library at $stdlib"
[ -z "$libpython" ] || [ -f "$libpython" ] || die "no libpython at $libpython"

# A parpy binary serves one minor version of CPython (its libpython and frozen
# module are of that version), so the Python tag is part of every artefact's name.
name=parpy-$version-$pytag-$machine-linux
work=$(mktemp -d "${TMPDIR:-/tmp}/parpy-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/$name
# The tree's libpython, if parpy loads one.
treelib=${libpython:+$tree/lib/$(basename "$libpython")}
say "assembling $name (Python $pyver from $stdlib)"

mkdir -p "$tree/bin" "$tree/lib/parpy" "$tree/lib/python$pyver"
install -m 755 "$PARPY_BIN" "$tree/bin/parpy"
install -m 755 "$PARPY_STUB" "$tree/lib/parpy/parpy-bundle-stub"
[ -z "$libpython" ] || install -m 755 "$libpython" "$treelib"

# The standard library, with the patterns of packaging/stdlib-exclude left out
# (the `bundle:` ones are for bundles only). tar keeps the files' mtimes, on
# which the validity of the compiled modules in __pycache__ depends.
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' -e '^bundle:' "$here/stdlib-exclude" |
    sed 's|^|./|' >"$work/exclude"
tar -C "$stdlib" --anchored --exclude-from="$work/exclude" -cf - . |
    tar -C "$tree/lib/python$pyver" -xpf -
mkdir -p "$tree/lib/python$pyver/$site_dir"

# The rpath: build.rs already puts $ORIGIN/../lib first; patchelf (if
# installed) also drops the build machine's path that follows it.
if command -v patchelf >/dev/null 2>&1; then
    patchelf --set-rpath '$ORIGIN/../lib' "$tree/bin/parpy"
fi
if command -v readelf >/dev/null 2>&1; then
    readelf -d "$tree/bin/parpy" | grep -q 'R[UN]*PATH.*\$ORIGIN/\.\./lib' ||
        die "bin/parpy has no \$ORIGIN/../lib rpath; rebuild it (cargo build --release)"
fi

if [ "${PARPY_DIST_STRIP:-1}" != 0 ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug $treelib "$tree/lib/python$pyver"/lib-dynload/*.so
fi

# Smoke test: the tree's parpy runs on the tree's own runtime.
prefix=$(env -u PYTHONHOME -u PYTHONPATH -u VIRTUAL_ENV "$tree/bin/parpy" -I -c 'import sys, json; print(sys.prefix)') ||
    die "the assembled bin/parpy does not run"
[ "$prefix" = "$tree" ] || die "the assembled bin/parpy uses the runtime in $prefix, not its own"

tarball=$out/$name.tar.gz
level=${PARPY_DIST_GZIP:-6}
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -cf - "$name" |
    gzip -n "-$level" >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
say "wrote $tarball ($(du -h "$tarball" | cut -f1))"

[ "${PARPY_DIST_DEB:-1}" != 0 ] || exit 0
if ! command -v dpkg-deb >/dev/null 2>&1; then
    say "no dpkg-deb: skipping the .deb"
    exit 0
fi

# Debian packages of the shared libraries that ELF files of the tree load.
packages_of() {
    ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
        while read -r lib; do
            case $lib in "$tree"/*) continue ;; esac
            base=$(basename "$lib")
            # (skipping dpkg's "diversion by PKG from: PATH" lines, which name no owner)
            dpkg -S "$base" 2>/dev/null | awk -F': ' -v b="/$base" \
                '!/^diversion / && substr($2, length($2) - length(b) + 1) == b {print $1}' | head -n1
        done | sed 's/[:,].*//' | sort -u
}
joined() { paste -sd, - | sed 's/,/, /g'; }
case $target in
    x86_64-*) arch=amd64 ;;
    aarch64-*) arch=arm64 ;;
    *) arch=$(dpkg --print-architecture) ;;
esac
dynload=$tree/lib/python$pyver/lib-dynload
# Depends: what parpy needs to start; Recommends: what the standard library's
# extension modules need (ssl, sqlite3, …); Suggests: what only tkinter needs.
packages_of "$tree/bin/parpy" $treelib >"$work/depends"
packages_of $(ls "$dynload"/*.so | grep -v /_tkinter) | sort -u - "$work/depends" |
    comm -23 - "$work/depends" >"$work/recommends"
# (A Python without its -tk package, Debian's python3.15 say, has no _tkinter.)
tkinter=$(compgen -G "$dynload/_tkinter*.so" || true)
if [ -n "$tkinter" ]; then
    packages_of $tkinter | sort -u - "$work/depends" "$work/recommends" |
        comm -23 - <(sort -u "$work/depends" "$work/recommends") >"$work/suggests"
else
    : >"$work/suggests"
fi
depends=$(joined <"$work/depends")
recommends=$(joined <"$work/recommends")
suggests=$(joined <"$work/suggests")

deb=$work/deb
mkdir -p "$deb/DEBIAN" "$deb/opt" "$deb/usr/bin"
cp -a "$tree" "$deb/opt/parpy"
ln -s /opt/parpy/bin/parpy "$deb/usr/bin/parpy"
{
    echo "Package: parpy"
    echo "Version: $version+$pytag"
    echo "Architecture: $arch"
    echo "Maintainer: ${PARPY_DEB_MAINTAINER:-parpy developers <parpy@localhost>}"
    echo "Installed-Size: $(du -sk "$deb/opt" | cut -f1)"
    [ -n "$depends" ] && echo "Depends: $depends"
    [ -n "$recommends" ] && echo "Recommends: $recommends"
    [ -n "$suggests" ] && echo "Suggests: $suggests"
    echo "Section: interpreters"
    echo "Priority: optional"
    echo "Description: Python with parallel sub-interpreters"
    echo " parpy runs Python scripts like python3 does, and runs @parpy.parallel"
    echo " functions on own-GIL sub-interpreters. It carries its own CPython $pyver"
    echo " in /opt/parpy and needs no other Python."
} >"$deb/DEBIAN/control"
debfile=$out/parpy_${version}+${pytag}_$arch.deb
dpkg-deb --root-owner-group -Zgzip "-z$level" --build "$deb" "$debfile.tmp" >/dev/null
mv "$debfile.tmp" "$debfile"
say "wrote $debfile ($(du -h "$debfile" | cut -f1))"
