//! What the CI and benchmark commands need from the machine: paths, a PostgreSQL server
//! that is up, and Python virtualenvs installed from pinned requirement files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const POSTGRES_URL: &str = "postgresql://postgres@127.0.0.1:5432";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repo").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// Where venvs and other downloaded tools are kept between runs.
pub fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/steward")
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(repo_root());
    c
}

pub fn step(what: &str) {
    println!("\n==> {what}");
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn postgres_ready() -> bool {
    Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", "5432"]).status().is_ok_and(|s| s.success())
}

/// Starts the machine's PostgreSQL cluster if it is down; its tests never skip.
pub fn ensure_postgres() -> anyhow::Result<()> {
    if postgres_ready() {
        return Ok(());
    }
    step("PostgreSQL is down; starting it");
    let versions = std::fs::read_dir("/etc/postgresql").context("PostgreSQL is not installed (/etc/postgresql missing)")?;
    for v in versions.flatten() {
        let version = v.file_name().to_string_lossy().into_owned();
        let _ = Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "start"]).status();
    }
    for _ in 0..60 {
        if postgres_ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    bail!("PostgreSQL did not come up on 127.0.0.1:5432")
}

/// Debian's Chromium for the web UI's browser tests: the installed one, else installed now
/// with apt (the machine's package manager; refreshing its index once if the first try fails).
pub fn ensure_chromium() -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(std::env::var("STEWARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if path.is_file() {
        return Ok(path);
    }
    step("installing Debian's chromium for the browser tests");
    let install = || Command::new("apt-get").args(["install", "-y", "-q", "--no-install-recommends", "chromium"]).env("DEBIAN_FRONTEND", "noninteractive").status().is_ok_and(|s| s.success());
    if !install() {
        run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        if !install() {
            bail!("apt-get could not install chromium");
        }
    }
    anyhow::ensure!(path.is_file(), "chromium was installed but {} is missing", path.display());
    Ok(path)
}

fn psql(sql: &str) -> anyhow::Result<String> {
    output(Command::new("psql").args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]))
}

/// Drops the databases earlier test runs created (`steward_test_*`, `steward_py_*`).
pub fn drop_test_databases() -> anyhow::Result<()> {
    let names = psql("SELECT datname FROM pg_database WHERE datname LIKE 'steward\\_test\\_%' OR datname LIKE 'steward\\_py\\_%'")?;
    for name in names.lines().filter(|l| !l.is_empty()) {
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    }
    Ok(())
}

/// A virtualenv under the cache dir with exactly `requirements` installed; rebuilt when the
/// file changes.
pub fn python_venv(name: &str, requirements: &Path) -> anyhow::Result<PathBuf> {
    let venv = cache_dir().join(name);
    let wanted = std::fs::read_to_string(requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".steward-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && venv.join("bin/python").exists() {
        return Ok(venv);
    }
    step(&format!("installing Python packages into {}", venv.display()));
    let _ = std::fs::remove_dir_all(&venv);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"]).arg(requirements))?;
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}
