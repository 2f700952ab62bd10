//! Headless Chromium for checking the HTML this project writes (flow-graph viewers, feature
//! dashboards) the way a reader sees it: the page's DOM after its scripts ran, its console
//! messages (uncaught errors included) and screenshots. Needs a Chromium binary (Debian's
//! `chromium` package, or `CHROMIUM=<path>`); nothing here downloads one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A page as Chromium left it: the serialised DOM and the console lines it logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// `document.documentElement.outerHTML` after the scripts ran.
    pub dom: String,
    /// Console messages, one line each as Chromium logs them
    /// (`[…:INFO:CONSOLE:12] "message", source: file:///… (12)`).
    pub console: Vec<String>,
}

/// A headless Chromium binary.
#[derive(Clone, Debug)]
pub struct Chromium {
    path: PathBuf,
    time_limit: Duration,
}

/// The `file://` URL of `path` (made absolute).
pub fn file_url(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", abs.display())
}

impl Chromium {
    /// `$CHROMIUM`, else the first of `/usr/bin/chromium`, `/usr/bin/chromium-browser` and
    /// `/usr/bin/google-chrome` that exists.
    ///
    /// # Errors
    /// [`Error::Io`] (not found) naming the package to install.
    pub fn find() -> Result<Self> {
        let candidates: Vec<PathBuf> = match std::env::var_os("CHROMIUM") {
            Some(p) => vec![PathBuf::from(p)],
            None => ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .map(|n| Path::new("/usr/bin").join(n))
                .collect(),
        };
        candidates
            .iter()
            .find(|p| p.exists())
            .map(|p| Chromium {
                path: p.clone(),
                time_limit: Duration::from_secs(60),
            })
            .ok_or_else(|| {
                Error::io(
                    &candidates[0],
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no headless Chromium: install the Debian package `chromium` \
                         (apt-get install -y chromium) or set CHROMIUM to a binary",
                    ),
                )
            })
    }

    /// The same browser with another limit on one run (default 60 s).
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `url`, lets its scripts run (3 s of virtual time) and returns the DOM and console.
    ///
    /// # Errors
    /// [`Error::Io`] when Chromium cannot start, fails, or runs past the time limit.
    pub fn dump_dom(&self, url: &str) -> Result<Page> {
        let (dom, console) = self.run(&["--dump-dom", url])?;
        Ok(Page { dom, console })
    }

    /// Saves a `width × height` PNG screenshot of `url` to `out`; returns the console lines.
    ///
    /// # Errors
    /// As [`Chromium::dump_dom`].
    pub fn screenshot(
        &self,
        url: &str,
        out: &Path,
        width: u32,
        height: u32,
    ) -> Result<Vec<String>> {
        let out = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
        let (_, console) = self.run(&[
            &format!("--screenshot={}", out.display()),
            &format!("--window-size={width},{height}"),
            url,
        ])?;
        Ok(console)
    }

    /// Runs Chromium headless with a fresh profile; returns (stdout, console lines).
    fn run(&self, args: &[&str]) -> Result<(String, Vec<String>)> {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let work = std::env::temp_dir().join(format!(
            "interp-chromium-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
        let result = self.run_in(&work, args);
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    fn run_in(&self, work: &Path, args: &[&str]) -> Result<(String, Vec<String>)> {
        let (out, err) = (work.join("stdout"), work.join("stderr"));
        let file = |p: &Path| std::fs::File::create(p).map_err(|e| Error::io(p, e));
        let fail = |msg: String| Error::io(&self.path, std::io::Error::other(msg));
        let mut child = Command::new(&self.path)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
            ])
            .arg(format!(
                "--user-data-dir={}",
                work.join("profile").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&out)?)
            .stderr(file(&err)?)
            .spawn()
            .map_err(|e| Error::io(&self.path, e))?;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| Error::io(&self.path, e))? {
                break s;
            }
            if start.elapsed() > self.time_limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("{args:?} ran past {:?}", self.time_limit)));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
        let (stdout, stderr) = (read(&out)?, read(&err)?);
        if !status.success() {
            return Err(fail(format!("{args:?}: {status}\n{stderr}")));
        }
        let console = stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect();
        Ok((stdout, console))
    }
}
