//! The link to libpython: static where the distribution ships one
//! (build/static_link.rs), with the modules that link leaves out replaced.

use crate::common::*;

/// BLAKE2 of every kind of parameter, the other hashes, and the errors, as
/// python3.X prints them. A static libpython has no `_blake2` of its own (its
/// HACL* code is left out of the archive): parpy's stand-in must match.
const HASHES: &str = r#"
import hashlib, _blake2
data = bytes(range(256)) * 3
for kind in (hashlib.blake2b, hashlib.blake2s):
    m = kind.MAX_DIGEST_SIZE
    print(kind.__name__, m, kind.MAX_KEY_SIZE, kind.SALT_SIZE, kind.PERSON_SIZE)
    print(kind(data).hexdigest())
    print(kind(data[:100], digest_size=20, key=b"k" * kind.MAX_KEY_SIZE).hexdigest())
    print(kind(b"", salt=b"s" * kind.SALT_SIZE, person=b"p").hexdigest())
    print(kind(data, fanout=2, depth=3, leaf_size=4096, node_offset=5, node_depth=1,
               inner_size=m // 2, last_node=True, digest_size=m // 2).hexdigest())
    for n in (0, 1, 63, 64, 65, 127, 128, 129):
        h = kind(key=b"key")
        h.update(data[:n])
        c = h.copy()
        h.update(data[n:])
        print(n, c.hexdigest()[:16], h.hexdigest()[:16], h.name, h.digest_size, h.block_size)
    for bad in ({"digest_size": 0}, {"digest_size": m + 1}, {"key": b"k" * (m + 1)},
                {"salt": b"s" * 17}, {"person": b"p" * 17}, {"fanout": 256}, {"depth": 0},
                {"node_depth": 256}, {"inner_size": m + 1}, {"leaf_size": -1}):
        try:
            kind(**bad)
        except (ValueError, OverflowError) as e:
            print(type(e).__name__, e)
    try:
        kind("text")
    except TypeError as e:
        print("TypeError", e)
print(_blake2.BLAKE2B_SALT_SIZE, _blake2.BLAKE2S_MAX_KEY_SIZE, _blake2._GIL_MINSIZE)
for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"):
    print(name, hashlib.new(name, data).hexdigest())
print(hashlib.shake_128(data).hexdigest(20), hashlib.shake_256(data).hexdigest(20))
print(sorted(hashlib.algorithms_guaranteed))
import _md5, _sha1, _sha2, _sha3
print(_md5.md5(data).hexdigest(), _sha1.sha1(data).hexdigest(), _sha2.sha384(data).hexdigest())
print(_sha3.sha3_224(data).hexdigest(), _sha3.shake_256(data).hexdigest(8), _md5.md5().name)
"#;

#[test]
fn hashlib_works_as_in_python() {
    let dir = TempDir::new("hashes");
    let script = dir.write("hashes.py", HASHES);
    assert_same(Run::python().arg(&script));
}

#[test]
fn blake2_in_a_worker_matches_main() {
    if skipped_on_refused_release(
        "a C function called with keywords in a sub-interpreter first aborts the process at exit (python/cpython#119213)",
    ) {
        return;
    }
    let dir = TempDir::new("blake2-worker");
    let script = dir.write(
        "b.py",
        r#"
import hashlib, parpy

def digest(n):
    import hashlib
    return hashlib.blake2b(bytes(n), digest_size=16, key=b"k").hexdigest(), hashlib.blake2s(bytes(n)).hexdigest()

with parpy.Executor(2) as ex:
    got = list(ex.map(digest, [0, 100, 1000]))
print(got == [digest(n) for n in (0, 100, 1000)])
"#,
    );
    let out = Run::parpy().arg(&script).run();
    assert_eq!(ok(&out), "True\n", "{out:#?}");
    assert_eq!(out.stderr, "");
}

/// Where the distribution ships `libpython3.X-pic.a`, parpy has the
/// interpreter in its executable (it maps no libpython), and extension
/// modules still find the C API in it; elsewhere it loads libpython3.X.so.
#[test]
fn links_libpython_as_the_distribution_ships_it() {
    let probe = Run::python()
        .args([
            "-I",
            "-c",
            "import os, sysconfig as s; print(os.path.isfile(os.path.join(s.get_config_var('LIBPL'), \
             'libpython' + s.get_config_var('LDVERSION') + '-pic.a')))",
        ])
        .run();
    let has_pic = ok(&probe).trim() == "True";
    let expected = match env!("PARPY_LIBPYTHON_LINK") {
        "shared (default)" => "shared",
        _ if has_pic => "static",
        _ => "shared",
    };
    let out = Run::parpy()
        .args([
            "-c",
            "import ctypes, _decimal, _json, zlib, pyexpat\n\
             maps = open('/proc/self/maps').read()\n\
             print('shared' if '/libpython3' in maps else 'static')\n\
             print(ctypes.pythonapi.Py_IsInitialized())",
        ])
        .run();
    assert_eq!(ok(&out), format!("{expected}\n1\n"), "{out:#?}");
}
