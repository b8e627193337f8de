//! The external decompressors `visorsim bench` runs on the same modules:
//! gzip, pigz, libdeflate-gunzip, igzip (ISA-L), zlib-ng and rapidgzip.
//! Each is found on `PATH` (pyenv's shims resolved to the real script, so
//! the shim's own start-up is not timed) or as a Python module, and run as
//! whole processes writing to /dev/null. A tool that is not found stays in
//! the list as missing, with how to install it
//! (`scripts/install-bench-peers.sh` installs them all).
//!
//! How each takes the input: one process per module file (as mboot loads
//! them; libdeflate-gunzip sizes its buffer from the last member's ISIZE,
//! so a concatenation of members would make it retry), except rapidgzip and
//! the Python-started zlib-ng, which get the modules' gzip members
//! concatenated into one file so that their start-up is paid once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::record::Tool;

/// How a peer takes the modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// One process per module file.
    PerFile,
    /// One process on all the modules' members concatenated.
    Concatenated,
}

/// A peer: the command (when found) and its record.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Figure id: `peer/<name>`.
    pub id: String,
    /// The command line without the file, as shown (`rapidgzip -P 2 -d -c`).
    pub label: String,
    /// Program and arguments before the file; `None` when missing.
    pub argv: Option<Vec<String>>,
    /// How it takes the input.
    pub input: Input,
    /// Its record.
    pub tool: Tool,
}

/// How one peer is looked for.
struct Spec {
    name: &'static str,
    /// Executables to try, in order.
    programs: &'static [&'static str],
    /// Else a Python module run as `python3 -m`.
    python_module: Option<&'static str>,
    /// The Python package whose `__version__` is the version.
    python_package: Option<&'static str>,
    args: fn(u32) -> Vec<String>,
    version_args: &'static [&'static str],
    input: Input,
    install: &'static str,
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const SPECS: &[Spec] = &[
    Spec {
        name: "libdeflate-gunzip",
        programs: &["libdeflate-gunzip"],
        python_module: None,
        python_package: None,
        args: |_| words(&["-c"]),
        version_args: &["-V"],
        input: Input::PerFile,
        install: "apt-get install libdeflate-tools",
    },
    Spec {
        name: "rapidgzip",
        programs: &["rapidgzip"],
        python_module: None,
        python_package: None,
        args: |cores| vec!["-P".into(), cores.to_string(), "-d".into(), "-c".into()],
        version_args: &["--version"],
        input: Input::Concatenated,
        install: "pip install rapidgzip",
    },
    Spec {
        name: "igzip",
        programs: &["igzip"],
        python_module: Some("isal.igzip"),
        python_package: Some("isal"),
        args: |_| words(&["-d", "-c"]),
        version_args: &["--version"],
        input: Input::PerFile,
        install: "apt-get install isal (or pip install isal)",
    },
    Spec {
        name: "zlib-ng",
        programs: &["minigzip-ng"],
        python_module: Some("zlib_ng.gzip_ng"),
        python_package: Some("zlib_ng"),
        args: |_| words(&["-d", "-c"]),
        version_args: &[],
        input: Input::Concatenated,
        install: "pip install zlib-ng",
    },
    Spec {
        name: "pigz",
        programs: &["pigz"],
        python_module: None,
        python_package: None,
        args: |_| words(&["-dc"]),
        version_args: &["--version"],
        input: Input::PerFile,
        install: "apt-get install pigz",
    },
    Spec {
        name: "gzip",
        programs: &["gzip"],
        python_module: None,
        python_package: None,
        args: |_| words(&["-dc"]),
        version_args: &["--version"],
        input: Input::PerFile,
        install: "apt-get install gzip",
    },
];

/// Every peer, found or missing, `rapidgzip` with `-P cores`.
pub fn peers(cores: u32) -> Vec<Peer> {
    let python = python3();
    SPECS.iter().map(|spec| resolve(spec, cores, python.as_deref())).collect()
}

fn resolve(spec: &Spec, cores: u32, python: Option<&Path>) -> Peer {
    let args = (spec.args)(cores);
    let found = spec.programs.iter().find_map(|p| find_on_path(p).map(|path| (path, *p)));
    let (argv, version, label) = if let Some((path, program)) = found {
        let version = (!spec.version_args.is_empty()).then(|| version_line(&path, spec.version_args)).flatten();
        let mut argv = vec![path.display().to_string()];
        argv.extend(args.iter().cloned());
        (Some(argv), version, format!("{program} {}", args.join(" ")))
    } else if let (Some(module), Some(python)) = (spec.python_module, python) {
        match python_version(python, spec.python_package.unwrap_or(module)) {
            Some(version) => {
                let mut argv = vec![python.display().to_string(), "-m".into(), module.into()];
                argv.extend(args.iter().cloned());
                (Some(argv), Some(version), format!("python3 -m {module} {}", args.join(" ")))
            }
            None => (None, None, spec.name.to_owned()),
        }
    } else {
        (None, None, spec.name.to_owned())
    };
    Peer {
        id: format!("peer/{}", spec.name),
        label,
        tool: Tool {
            name: spec.name.to_owned(),
            path: argv.as_ref().map(|a| a.join(" ")),
            version,
            install: spec.install.to_owned(),
        },
        argv,
        input: spec.input,
    }
}

/// `program` on PATH; a pyenv shim is resolved to the script it runs.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path).map(|d| d.join(program)).find(|p| is_executable(p))?;
    if found.to_string_lossy().contains("/.pyenv/shims/") {
        let real = Command::new("pyenv").args(["which", program]).stderr(Stdio::null()).output().ok()?;
        if !real.status.success() {
            // The shim exists but no installed version provides it.
            return None;
        }
        let real = PathBuf::from(String::from_utf8_lossy(&real.stdout).trim());
        return is_executable(&real).then_some(real);
    }
    Some(found)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The real Python 3 interpreter (`sys.executable`), if any.
fn python3() -> Option<PathBuf> {
    let python = find_on_path("python3")?;
    let out =
        Command::new(&python).args(["-c", "import sys; print(sys.executable)"]).stderr(Stdio::null()).output().ok()?;
    let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && is_executable(&real)).then_some(real).or(Some(python))
}

/// `package.__version__`, when the package imports.
fn python_version(python: &Path, package: &str) -> Option<String> {
    let root = package.split('.').next().unwrap_or(package);
    let script = format!("import {root}; print(getattr({root}, '__version__', 'unknown'))");
    let out = Command::new(python).args(["-c", &script]).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| format!("{root} {}", String::from_utf8_lossy(&out.stdout).trim()))
}

/// The first non-empty line a program prints for `args` (stdout, else stderr).
pub fn version_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().ok()?;
    let text = if out.stdout.iter().any(|b| !b.is_ascii_whitespace()) { out.stdout } else { out.stderr };
    String::from_utf8_lossy(&text).lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

/// Runs `argv` on each file (or on `concatenated`), output to /dev/null,
/// or counted when `count` (for the size check). The bytes counted (0 when
/// not counting).
///
/// # Errors
/// A process failed to start or exited non-zero: its command and stderr.
pub fn run_peer(
    argv: &[String],
    input: Input,
    files: &[PathBuf],
    concatenated: &Path,
    count: bool,
) -> Result<u64, String> {
    let inputs: Vec<&Path> = match input {
        Input::PerFile => files.iter().map(PathBuf::as_path).collect(),
        Input::Concatenated => vec![concatenated],
    };
    let mut total = 0u64;
    for file in inputs {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).arg(file).stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(if count { Stdio::piped() } else { Stdio::null() });
        let shown = || format!("{} {}", argv.join(" "), file.display());
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", shown()))?;
        if let Some(mut out) = child.stdout.take() {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(e) => return Err(format!("{}: reading its output: {e}", shown())),
                }
            }
        }
        let output = child.wait_with_output().map_err(|e| format!("{}: {e}", shown()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("{} failed ({}): {}", shown(), output.status, stderr.trim()));
        }
    }
    Ok(total)
}
