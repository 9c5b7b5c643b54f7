//! `parpy bundle`: writes one executable file that holds the launcher stub,
//! parpy, the Python runtime it runs on (libpython and the standard library),
//! a script, the paths given with `--add` and the script's pure-Python
//! dependencies. See `format` for the layout and `extract` for how it starts.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Parser;

use super::format::{self, Trailer};

/// What neither the distribution nor bundles ship of the standard library.
const STDLIB_EXCLUDE: &str = include_str!("../../packaging/stdlib-exclude");

/// The launcher stub's file name (next to parpy, or in `../lib/parpy/`).
pub const STUB_NAME: &str = "parpy-bundle-stub";

/// `parpy bundle`'s options.
#[derive(Debug, Parser)]
#[command(
    name = "parpy bundle",
    disable_version_flag = true,
    override_usage = "parpy bundle [OPTIONS] SCRIPT\n       parpy bundle --cache | --clean",
    about = "Build a single-file executable that runs SCRIPT like `parpy SCRIPT` does, \
             on machines without Python.",
    after_help = "The file holds parpy, its Python runtime (libpython and the standard library), \
SCRIPT, the --add paths and the dependencies. Its first run unpacks the runtime into \
$PARPY_BUNDLE_CACHE/<sha256> (default $XDG_CACHE_HOME/parpy/bundles, else ~/.cache/...), \
checking the payload's sha256; later runs start from there. `./APP ARGS...` then behaves like \
`parpy SCRIPT ARGS...`, @parpy.parallel and __parallel__ included.\n\n\
The cache: `parpy bundle --cache` lists it; `parpy bundle --clean` removes every unpacked \
bundle that no running app uses. A bundle's start also removes, at most once a day, those \
unused for 30 days (never one that runs).\n\n\
C extensions: dependencies and --add paths may only hold pure Python. A bundle REFUSES \
compiled extension modules (.so): they are built for one platform and Python and most \
refuse parpy's sub-interpreter workers. The error names each one; --allow-native includes \
them anyway, with a warning.\n\n\
Needs pip for --requirements: the runtime's own (`parpy -m pip`), else the pip wheel \
that ships with the standard library (ensurepip)."
)]
pub struct Args {
    /// The Python script that the bundle runs
    #[arg(value_name = "SCRIPT", required_unless_present_any = ["cache", "clean"])]
    pub script: Option<PathBuf>,

    /// List the unpacked bundles in the cache (size, last use, in use), then exit
    #[arg(long, conflicts_with_all = ["script", "clean"])]
    pub cache: bool,

    /// Remove the unpacked bundles that no running app uses, then exit
    #[arg(long, conflicts_with = "script")]
    pub clean: bool,

    /// The file to write (default: SCRIPT's name without .py, in the current folder)
    #[arg(short = 'o', long = "output", value_name = "APP")]
    pub output: Option<PathBuf>,

    /// A module, package or data file/folder to put next to the script, so it imports
    /// (or opens) as it does beside the script; repeatable
    #[arg(long = "add", value_name = "PATH")]
    pub add: Vec<PathBuf>,

    /// Dependencies to install into the bundle with `pip install --target` (a requirements file)
    #[arg(short = 'r', long, value_name = "FILE", conflicts_with = "venv")]
    pub requirements: Option<PathBuf>,

    /// Dependencies to copy from this virtualenv's site-packages (pip itself left out)
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,

    /// Include compiled extension modules instead of refusing them
    #[arg(long)]
    pub allow_native: bool,

    /// zstd compression level of the payload (1 fastest .. 19 smallest)
    #[arg(long, value_name = "N", default_value_t = 9,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,

    /// Keep debug information in libpython and extension modules (default: strip it
    /// with `strip --strip-debug` when that tool is on PATH)
    #[arg(long)]
    pub no_strip: bool,
}

/// Runs `parpy bundle ARGS...` and returns the exit code.
pub fn run(args: &[OsString]) -> Result<i32> {
    let mut argv = vec![OsString::from("parpy bundle")];
    argv.extend(args.iter().cloned());
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if args.cache {
        return Ok(super::cache::print_cache());
    }
    if args.clean {
        return Ok(super::cache::clean());
    }
    let out = build(&args)?;
    eprintln!(
        "parpy bundle: wrote {} ({:.1} MB; runtime in the cache folder bundles/{}…)",
        out.path.display(),
        out.size as f64 / 1e6,
        &out.sha256[..12]
    );
    Ok(0)
}

/// A written bundle.
#[derive(Debug)]
pub struct Built {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// The Python runtime that this parpy runs on.
#[derive(Debug)]
pub struct Runtime {
    /// The standard library folder (`…/lib/python3.X`).
    pub stdlib: PathBuf,
    /// `3.X`.
    pub version: String,
    /// The libpython file this process has loaded; `None` for a parpy linked
    /// to a static libpython (see build/static_link.rs), which carries it.
    pub libpython: Option<PathBuf>,
    /// The folder of `lib/python3.X/` that this standard library's `site` searches
    /// for a plain (non-venv) prefix: `site-packages`, or `dist-packages` where the
    /// distribution patched `site.py` (Debian, Ubuntu).
    pub site_dir: String,
}

const PROBE: &str = "import sys, sysconfig\n\
print(sysconfig.get_path('stdlib'))\n\
print('%d.%d' % sys.version_info[:2])\n\
maps = [l.split(None, 5) for l in open('/proc/self/maps')]\n\
print(next((m[5].strip() for m in maps if len(m) == 6 and m[5].strip().rsplit('/', 1)[-1].startswith('libpython')), ''))\n\
import site\n\
lib = '/@prefix@/lib/python%d.%d/' % sys.version_info[:2]\n\
print(next((p[len(lib):] for p in site.getsitepackages(['/@prefix@']) if p.startswith(lib)), 'site-packages'))\n";

/// Asks `exe` (this parpy) where its runtime lives.
pub fn probe(exe: &Path) -> Result<Runtime> {
    let out = Command::new(exe)
        .args(["-I", "-S", "-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "cannot inspect the Python runtime of {}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let (Some(stdlib), Some(version), Some(lib), Some(site_dir)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        bail!("unexpected answer from {}: {text:?}", exe.display());
    };
    let rt = Runtime {
        stdlib: PathBuf::from(stdlib),
        version: version.to_string(),
        libpython: Some(PathBuf::from(lib)).filter(|_| !lib.is_empty()),
        site_dir: site_dir.to_string(),
    };
    if !rt.stdlib.join("os.py").is_file() || !rt.stdlib.join("lib-dynload").is_dir() {
        bail!(
            "{} does not look like a CPython standard library (no os.py or lib-dynload/)",
            rt.stdlib.display()
        );
    }
    Ok(rt)
}

/// Where the launcher stub is: `$PARPY_BUNDLE_STUB`, next to parpy (a cargo
/// build), or in `../lib/parpy/` (the distribution).
pub fn find_stub(exe: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PARPY_BUNDLE_STUB") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("PARPY_BUNDLE_STUB={} is not a file", p.display());
        }
        return Ok(p);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    let cands = [
        dir.join(STUB_NAME),
        dir.join("..").join("lib").join("parpy").join(STUB_NAME),
    ];
    cands
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "cannot find the bundle launcher {STUB_NAME} (looked in {} and {}); \
             set PARPY_BUNDLE_STUB",
                cands[0].display(),
                cands[1].display()
            )
        })
}

/// The standard-library patterns that apply to bundles (`bundle`) or the distribution.
pub fn stdlib_excludes(bundle: bool) -> Vec<&'static str> {
    STDLIB_EXCLUDE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.strip_prefix("bundle:") {
            Some(p) => bundle.then_some(p.trim()),
            None => Some(l),
        })
        .collect()
}

/// Shell-style match of a whole string: `*` is any run of bytes (`/` too), `?` one byte.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && p[pi] == s[si])) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One member of the payload.
enum Entry {
    Dir { name: String },
    File { name: String, src: PathBuf },
    Data { name: String, data: Vec<u8> },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Dir { name } | Entry::File { name, .. } | Entry::Data { name, .. } => name,
        }
    }
}

/// Adds `src` (a file or a folder, recursively) to `out` as `name`, skipping
/// paths (relative to `src`) for which `skip` is true. Files and folders are
/// visited in name order, so the payload does not depend on readdir order.
fn walk(src: &Path, name: &str, skip: &dyn Fn(&str) -> bool, out: &mut Vec<Entry>) -> Result<()> {
    fn go(
        dir: &Path,
        rel: &str,
        name: &str,
        skip: &dyn Fn(&str) -> bool,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        let mut items: Vec<_> = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        items.sort_by_key(|e| e.file_name());
        for item in items {
            let fname = item.file_name();
            let Some(fname) = fname.to_str() else {
                bail!("{}: file names must be UTF-8", item.path().display());
            };
            let rel = if rel.is_empty() {
                fname.to_string()
            } else {
                format!("{rel}/{fname}")
            };
            if skip(&rel) {
                continue;
            }
            let path = item.path();
            let member = format!("{name}/{rel}");
            // Symbolic links are followed: the payload holds what they point at.
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => {
                    eprintln!(
                        "parpy bundle: warning: skipping {} (a broken link)",
                        path.display()
                    );
                    continue;
                }
            };
            if meta.is_dir() {
                out.push(Entry::Dir { name: member });
                go(&path, &rel, name, skip, out)?;
            } else if meta.is_file() {
                out.push(Entry::File {
                    name: member,
                    src: path,
                });
            }
        }
        Ok(())
    }
    let meta = fs::metadata(src).with_context(|| format!("cannot read {}", src.display()))?;
    if meta.is_dir() {
        out.push(Entry::Dir {
            name: name.to_string(),
        });
        go(src, "", name, skip, out)
    } else {
        out.push(Entry::File {
            name: name.to_string(),
            src: src.to_path_buf(),
        });
        Ok(())
    }
}

/// A temporary folder, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new() -> Result<Staging> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("parpy-bundle-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(Staging(p))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn file_name_str(p: &Path) -> Result<&str> {
    p.file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: needs a UTF-8 file name", p.display()))
}

/// Compiled Python (`__pycache__/`, `.pyc`): left out of bundles, like the
/// standard library's (see packaging/stdlib-exclude); CPython writes it anew
/// in the cache on first import.
fn is_bytecode(rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    base == "__pycache__" || base.ends_with(".pyc")
}

/// Whether a file is a compiled extension module or a shared library.
fn is_native(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.ends_with(".so")
        || base.contains(".so.")
        || base.ends_with(".pyd")
        || base.ends_with(".dylib")
}

/// Builds the bundle that `args` describe.
pub fn build(args: &Args) -> Result<Built> {
    let Some(script) = &args.script else {
        bail!("no SCRIPT given");
    };
    if !script.is_file() {
        bail!("{}: no such script", script.display());
    }
    let main = file_name_str(script)?.to_string();
    let output = match &args.output {
        Some(o) => o.clone(),
        None => PathBuf::from(script.file_stem().unwrap_or(script.as_os_str())),
    };
    if output.is_dir() {
        bail!(
            "{} is a folder; -o names the file to write",
            output.display()
        );
    }
    if fs::canonicalize(&output).ok() == fs::canonicalize(script).ok() && output.exists() {
        bail!("-o {} would overwrite the script", output.display());
    }

    let exe = std::env::current_exe().context("cannot locate the parpy executable")?;
    let stub = find_stub(&exe)?;
    let rt = probe(&exe)?;
    let staging = Staging::new()?;
    let pyver = format!("python{}", rt.version);
    let site = format!("lib/{pyver}/{}", rt.site_dir);

    let mut entries = Vec::new();
    entries.push(Entry::Dir { name: "bin".into() });
    entries.push(Entry::File {
        name: "bin/parpy".into(),
        src: exe.clone(),
    });
    entries.push(Entry::Dir { name: "lib".into() });

    // The runtime: libpython and the standard library.
    let excludes = stdlib_excludes(true);
    let mut runtime = Vec::new();
    if let Some(libpython) = &rt.libpython {
        let libname = file_name_str(libpython)?.to_string();
        runtime.push(Entry::File {
            name: format!("lib/{libname}"),
            src: libpython.clone(),
        });
    }
    walk(
        &rt.stdlib,
        &format!("lib/{pyver}"),
        &|rel| excludes.iter().any(|p| glob(p, rel)),
        &mut runtime,
    )?;
    if !args.no_strip {
        strip_debug_info(&mut runtime, &staging.0)?;
    }
    entries.extend(runtime);

    // The app: the script and the --add paths, side by side in app/.
    let mut app = vec![
        Entry::Dir { name: "app".into() },
        Entry::File {
            name: format!("app/{main}"),
            src: script.clone(),
        },
    ];
    let mut taken = vec![main.clone()];
    for add in &args.add {
        let add_path =
            fs::canonicalize(add).with_context(|| format!("--add {}: not found", add.display()))?;
        let base = file_name_str(&add_path)?.to_string();
        if taken.contains(&base) {
            bail!(
                "--add {}: the bundle already has an app/{base}",
                add.display()
            );
        }
        taken.push(base.clone());
        walk(&add_path, &format!("app/{base}"), &is_bytecode, &mut app)?;
    }
    // The dependencies, in the runtime's site-packages.
    let mut deps = Vec::new();
    if let Some(req) = &args.requirements {
        let target = staging.0.join("site-packages");
        pip_install(&exe, &rt, req, &target)?;
        // Console scripts would point at a python that the bundle does not have.
        walk(
            &target,
            &site,
            &|rel| rel == "bin" || is_bytecode(rel),
            &mut deps,
        )?;
    }
    if let Some(venv) = &args.venv {
        let sp = venv_site_packages(venv, &rt.version)?;
        let skip = |rel: &str| {
            let top = rel.split('/').next().unwrap_or(rel);
            is_bytecode(rel)
                || top == "pip"
                || (top.starts_with("pip-") && top.ends_with(".dist-info"))
        };
        walk(&sp, &site, &skip, &mut deps)?;
    }
    deps.retain(|e| e.name() != site); // the folder itself comes with the standard library
    warn_about_path_files(&deps);

    let native: Vec<&str> = app
        .iter()
        .chain(deps.iter())
        .filter(|e| matches!(e, Entry::File { .. }) && is_native(e.name()))
        .map(Entry::name)
        .collect();
    if !native.is_empty() {
        let list = native.join(", ");
        if !args.allow_native {
            bail!(
                "refusing to bundle compiled extension modules: {list}. A bundle carries pure \
                 Python only: these are built for one platform, and most refuse parpy's \
                 sub-interpreter workers. Use pure-Python packages, or --allow-native to \
                 include them anyway"
            );
        }
        eprintln!(
            "parpy bundle: warning: including compiled extension modules (they run only on \
             this platform, and may refuse parpy's workers): {list}"
        );
    }
    entries.extend(app);
    entries.extend(deps);
    entries.push(Entry::Data {
        name: format::MANIFEST.into(),
        data: format!(
            "main={main}\nparpy={}\npython={}\n",
            env!("CARGO_PKG_VERSION"),
            rt.version
        )
        .into_bytes(),
    });

    let payload = archive(&entries, args.level)?;
    let sha = format::sha256(&payload);
    let stub_bytes = fs::read(&stub).with_context(|| format!("cannot read {}", stub.display()))?;
    let trailer = Trailer {
        offset: stub_bytes.len() as u64,
        len: payload.len() as u64,
        sha256: sha,
    };
    write_executable(&output, &[&stub_bytes, &payload, &trailer.to_bytes()])?;
    Ok(Built {
        size: fs::metadata(&output)?.len(),
        path: output,
        sha256: trailer.hex(),
    })
}

/// Replaces the sources of libpython and extension modules in `entries` by
/// copies without debug information (often most of their size), when
/// binutils' `strip` is available.
fn strip_debug_info(entries: &mut [Entry], staging: &Path) -> Result<()> {
    let has_strip = Command::new("strip")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_strip {
        return Ok(());
    }
    let dir = staging.join("stripped");
    fs::create_dir_all(&dir)?;
    let mut copies = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if let Entry::File { name, src } = e
            && is_native(name)
        {
            let copy = dir.join(format!("{i}-{}", file_name_str(src)?));
            fs::copy(&*src, &copy).with_context(|| format!("cannot copy {}", src.display()))?;
            copies.push((copy, src));
        }
    }
    if copies.is_empty() {
        return Ok(());
    }
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .args(copies.iter().map(|(c, _)| c))
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        for (copy, src) in copies {
            *src = copy;
        }
    } else {
        eprintln!("parpy bundle: warning: `strip --strip-debug` failed; keeping debug information");
    }
    Ok(())
}

/// Installs the requirements in `req` into `target` with pip.
fn pip_install(exe: &Path, rt: &Runtime, req: &Path, target: &Path) -> Result<()> {
    if !req.is_file() {
        bail!("--requirements {}: no such file", req.display());
    }
    let has_pip = Command::new(exe)
        .args(["-c", "import pip"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new(exe);
    if !has_pip {
        // The pip wheel that ships with the standard library runs as it is. It lies in
        // ensurepip/_bundled, or, in distribution builds configured with
        // --with-wheel-pkg-dir (Debian's python3.X-venv: /usr/share/python-wheels), in
        // sysconfig's WHEEL_PKG_DIR.
        let mut dirs = vec![rt.stdlib.join("ensurepip").join("_bundled")];
        let wheel_pkg_dir = Command::new(exe)
            .args([
                "-I",
                "-S",
                "-c",
                "import sysconfig; print(sysconfig.get_config_var('WHEEL_PKG_DIR') or '')",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if !wheel_pkg_dir.is_empty() {
            dirs.push(PathBuf::from(wheel_pkg_dir));
        }
        let wheel = dirs
            .iter()
            .flat_map(|d| fs::read_dir(d).ok().into_iter().flatten())
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("pip-") && n.ends_with(".whl"))
            });
        let Some(wheel) = wheel else {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            bail!(
                "--requirements needs pip, and neither `{} -m pip` nor a pip wheel in {} is \
                 available; use --venv instead",
                exe.display(),
                looked.join(" or ")
            );
        };
        cmd.env("PYTHONPATH", wheel);
    }
    cmd.args([
        "-m",
        "pip",
        "install",
        "--no-compile",
        "--disable-pip-version-check",
    ])
    .arg("--no-warn-script-location")
    .args(["--target".as_ref(), target.as_os_str()])
    .args(["-r".as_ref(), req.as_os_str()])
    .stdin(Stdio::null());
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {} -m pip", exe.display()))?;
    if !status.success() {
        bail!("pip install -r {} failed ({status})", req.display());
    }
    Ok(())
}

/// The site-packages folder of the virtualenv `venv`, which must be for Python `version`.
fn venv_site_packages(venv: &Path, version: &str) -> Result<PathBuf> {
    if !venv.join("pyvenv.cfg").is_file() {
        bail!(
            "--venv {}: not a virtualenv (no pyvenv.cfg)",
            venv.display()
        );
    }
    let sp = venv
        .join("lib")
        .join(format!("python{version}"))
        .join("site-packages");
    if sp.is_dir() {
        return Ok(sp);
    }
    let found: Vec<String> = fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("python"))
        .collect();
    bail!(
        "--venv {}: it has no lib/python{version}/site-packages (found: {}); this parpy runs \
         Python {version}",
        venv.display(),
        if found.is_empty() {
            "nothing".into()
        } else {
            found.join(", ")
        }
    )
}

/// `.pth` files that add absolute paths (editable installs, say) point outside the bundle.
fn warn_about_path_files(deps: &[Entry]) {
    for e in deps {
        let Entry::File { name, src } = e else {
            continue;
        };
        if !name.ends_with(".pth") {
            continue;
        }
        let text = fs::read_to_string(src).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.starts_with('/') || l.starts_with("import __editable__"))
        {
            eprintln!(
                "parpy bundle: warning: {} refers to paths outside the bundle (an editable \
                 install?); bundle that package with --add instead",
                name.rsplit('/').next().unwrap_or(name)
            );
        }
    }
}

/// The payload: the entries as a tar archive, zstd-compressed.
fn archive(entries: &[Entry], level: i32) -> Result<Vec<u8>> {
    let enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    let mut tar = tar::Builder::new(enc);
    tar.follow_symlinks(true);
    tar.sparse(false);
    for e in entries {
        match e {
            // Folders are always 0755: the cache must stay writable by its owner
            // (compiled modules, later runs' stamps) whatever the source's modes.
            Entry::Dir { name } => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, name, std::io::empty())?;
            }
            Entry::File { name, src } => tar
                .append_path_with_name(src, name)
                .with_context(|| format!("cannot archive {}", src.display()))?,
            Entry::Data { name, data } => {
                let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
                tar.append_data(&mut h, name, data.as_slice())?;
            }
        }
    }
    let enc = tar.into_inner()?;
    Ok(enc.finish()?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    h.set_cksum();
    h
}

/// Writes `parts` to `path` as one executable file, through a temporary file
/// and a rename, so a reader never sees half a bundle.
fn write_executable(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.parpy-tmp-{}",
        file_name_str(path)?,
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        for p in parts {
            f.write_all(p)?;
        }
        f.set_permissions(fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_whole_paths() {
        assert!(glob("test", "test"));
        assert!(!glob("test", "test2"));
        assert!(!glob("test", "unittest"));
        assert!(glob(
            "lib-dynload/_test*",
            "lib-dynload/_testcapi.cpython-313-x86_64-linux-gnu.so"
        ));
        assert!(!glob("lib-dynload/_test*", "lib-dynload/_ssl.so"));
        assert!(glob(
            "config-*/libpython*.a",
            "config-3.13-x86_64-linux-gnu/libpython3.13.a"
        ));
        assert!(glob("site-packages/*", "site-packages/pip"));
        assert!(!glob("site-packages/*", "site-packages"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
    }

    #[test]
    fn excludes_keep_lib_dynload_and_drop_tests() {
        let dist = stdlib_excludes(false);
        let bundle = stdlib_excludes(true);
        let hit = |ps: &[&str], p: &str| ps.iter().any(|x| glob(x, p));
        assert!(hit(&dist, "test"));
        assert!(hit(&dist, "idlelib/idle_test"));
        assert!(!hit(&dist, "lib-dynload"));
        assert!(!hit(
            &dist,
            "lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so"
        ));
        assert!(!hit(&dist, "idlelib"));
        assert!(hit(&bundle, "idlelib"));
        assert!(!hit(&bundle, "json"));
    }

    #[test]
    fn native_files() {
        assert!(is_native(
            "app/pkg/_speedups.cpython-313-x86_64-linux-gnu.so"
        ));
        assert!(is_native(
            "lib/python3.13/site-packages/numpy.libs/libopenblas.so.0"
        ));
        assert!(!is_native("app/pkg/solver.py"));
        assert!(!is_native("app/sonnet.txt"));
    }
}
