//! The embedded PostgreSQL `oneo demo` falls back on: a private cluster made from the
//! machine's own PostgreSQL binaries, in a folder of its own (`./data/pg`), with
//! `wal_level=logical`, listening on a free loopback port and no Unix socket, started and
//! stopped by the demo itself.
//!
//! PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres`
//! user the distribution's packages create, and every tool runs through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

/// A running private cluster. Dropping it stops the server (fast shutdown).
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<Owner>,
    stopped: bool,
}

/// The unprivileged user the cluster runs as when the demo runs as root.
#[derive(Clone)]
struct Owner {
    name: String,
    uid: u32,
    gid: u32,
}

impl EmbeddedPostgres {
    /// Starts the cluster in `dir`, creating it on first use; one already running there (a
    /// demo that was killed) is taken over.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bindir = find_bindir().ok_or_else(|| {
            anyhow::anyhow!(
                "no PostgreSQL answers and no PostgreSQL binaries (initdb, pg_ctl) were found to run one; install them with:\n    {}\nor point DATABASE_URL at a PostgreSQL with wal_level=logical",
                install_hint(std::fs::read_to_string("/etc/os-release").ok().as_deref())
            )
        })?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let run_as = if running_as_root() {
            let owner = postgres_user().context(
                "PostgreSQL will not run as root and there is no `postgres` user to run it as; run `oneo demo` as an ordinary user",
            )?;
            std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("handing {} to the postgres user", dir.display()))?;
            Some(owner)
        } else {
            None
        };
        let mut cluster = EmbeddedPostgres {
            bindir,
            dir,
            port: 0,
            run_as,
            stopped: true,
        };
        if !cluster.dir.join("PG_VERSION").exists() {
            cluster.init()?;
        }
        if let Some(port) = cluster.running_port() {
            eprintln!(
                "embedded PostgreSQL: reusing the one running in {} (port {port})",
                cluster.dir.display()
            );
            cluster.port = port;
        } else {
            cluster.port = free_port()?;
            let log = cluster.dir.join("server.log");
            let opts = format!("-p {}", cluster.port);
            cluster.run(
                "pg_ctl",
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-D".as_ref(),
                    cluster.dir.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    opts.as_ref(),
                ],
            )?;
            eprintln!(
                "embedded PostgreSQL: started in {} on 127.0.0.1:{} (log: {})",
                cluster.dir.display(),
                cluster.port,
                log.display()
            );
        }
        cluster.stopped = false;
        Ok(cluster)
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server, waiting until it has shut down.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_server()
    }

    fn stop_server(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let args = [
            "stop".as_ref(),
            "-w".as_ref(),
            "-m".as_ref(),
            "fast".as_ref(),
            "-D".as_ref(),
            self.dir.as_os_str(),
        ];
        self.run("pg_ctl", &args)?;
        eprintln!("embedded PostgreSQL: stopped");
        Ok(())
    }

    /// `initdb` with trust auth for a `postgres` superuser, then the settings ingest needs.
    fn init(&self) -> anyhow::Result<()> {
        eprintln!(
            "embedded PostgreSQL: creating a cluster in {} with {}",
            self.dir.display(),
            self.bindir.display()
        );
        let args = [
            "-D".as_ref(),
            self.dir.as_os_str(),
            "-U".as_ref(),
            "postgres".as_ref(),
            "--auth=trust".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--no-instructions".as_ref(),
        ];
        self.run("initdb", &args)?;
        // Loopback only, no socket (its folder may not be writable), and logical decoding.
        let settings = "\n# oneo demo: the embedded cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nwal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n";
        let conf = self.dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .with_context(|| format!("reading {}", conf.display()))?;
        text.push_str(settings);
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        Ok(())
    }

    /// The port of a server already running on this folder, from its `postmaster.pid`.
    fn running_port(&self) -> Option<u16> {
        let status = self
            .command(
                "pg_ctl",
                &["status".as_ref(), "-D".as_ref(), self.dir.as_os_str()],
            )
            .output()
            .ok()?;
        if !status.status.success() {
            return None;
        }
        // postmaster.pid: pid, data directory, start time, port, …
        let pid = std::fs::read_to_string(self.dir.join("postmaster.pid")).ok()?;
        pid.lines().nth(3)?.trim().parse().ok()
    }

    fn command(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Command {
        let program = self.bindir.join(tool);
        let mut cmd = match &self.run_as {
            Some(owner) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &owner.name, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The tools must not depend on the caller's folder, which the owner may not read.
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<Output> {
        let out = self
            .command(tool, args)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!(
                "{tool} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop_server() {
            eprintln!("embedded PostgreSQL: stopping failed: {e:#}");
        }
    }
}

/// Where `initdb` and `pg_ctl` live: `pg_config --bindir`, the newest Debian/Ubuntu
/// `/usr/lib/postgresql/<major>/bin`, Homebrew's, then `PATH`.
fn find_bindir() -> Option<PathBuf> {
    let usable = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
    for root in ["/usr/lib/postgresql", "/opt/homebrew/opt", "/usr/local/opt"] {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let major = name.trim_start_matches("postgresql@").parse().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        candidates.extend(found.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| usable(d))
}

/// The command that installs PostgreSQL's server binaries on this platform, from the text
/// of `/etc/os-release` (absent on macOS).
pub fn install_hint(os_release: Option<&str>) -> &'static str {
    if cfg!(target_os = "macos") {
        return "brew install postgresql@17";
    }
    let ids: Vec<String> = os_release
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .flat_map(|v| {
            v.trim_matches('"')
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let is = |name: &str| ids.iter().any(|i| i == name);
    if is("debian") || is("ubuntu") {
        "sudo apt-get install -y postgresql"
    } else if is("fedora") || is("rhel") || is("centos") {
        "sudo dnf install -y postgresql-server"
    } else if is("arch") {
        "sudo pacman -S postgresql"
    } else if is("alpine") {
        "sudo apk add postgresql"
    } else if is("suse") || is("opensuse") {
        "sudo zypper install -y postgresql-server"
    } else {
        "your platform's PostgreSQL server package (https://www.postgresql.org/download/), so that initdb and pg_ctl are on PATH"
    }
}

/// Whether this process runs as root (Linux: the owner of `/proc/self`).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The `postgres` account from `/etc/passwd`.
fn postgres_user() -> anyhow::Result<Owner> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            let name = f.next().filter(|n| *n == "postgres")?;
            let _password = f.next()?;
            Some(Owner {
                name: name.to_string(),
                uid: f.next()?.parse().ok()?,
                gid: f.next()?.parse().ok()?,
            })
        })
        .context("no postgres entry in /etc/passwd")
}

/// A loopback port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::install_hint;

    #[test]
    fn install_hint_names_the_platforms_package_manager() {
        if cfg!(target_os = "macos") {
            return;
        }
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            install_hint(Some(debian)),
            "sudo apt-get install -y postgresql"
        );
        let mint = "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n";
        assert_eq!(
            install_hint(Some(mint)),
            "sudo apt-get install -y postgresql"
        );
        let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert_eq!(
            install_hint(Some(rocky)),
            "sudo dnf install -y postgresql-server"
        );
        assert_eq!(install_hint(Some("ID=alpine\n")), "sudo apk add postgresql");
        assert!(install_hint(None).contains("postgresql.org/download"));
    }
}
