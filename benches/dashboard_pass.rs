#![allow(missing_docs)]
//! The Rust side of `benches/dashboard_anchor.py`: the dashboard data pass
//! (`interp_dashboard::gather`) over the model, SAE and tokens that script writes, timed call
//! by call so the script can interleave it with SAEDashboard's pass on the same inputs.
//!
//! With `INTERP_DASHBOARD_DIR=<dir>` (holding `model/`, `sae/` and `tokens.safetensors`), it
//! reads one request per line on stdin — `pass <F>`: gather the first `F` features (`all`:
//! every feature) — and answers `ok <seconds> <peak RSS in KiB>` or `err <message>`. Without
//! it, it prints this and exits (a plain `cargo bench` never waits for input).

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use interp::models::prelude::*;
use interp_dashboard::{gather, GatherOptions};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(dir) = std::env::var("INTERP_DASHBOARD_DIR") else {
        eprintln!(
            "dashboard_pass: the worker of benches/dashboard_anchor.py (set INTERP_DASHBOARD_DIR)"
        );
        return Ok(());
    };
    let dir = Path::new(&dir);
    let model = HookedTransformer::<Cpu>::from_dir(&dir.join("model"), &Default::default())?;
    let sae = interp::sae::load(&dir.join("sae"))?;
    let file = interp_core::SafetensorsFile::open(&dir.join("tokens.safetensors"))?;
    let (shape, ids) = file.read_i64("tokens")?;
    let windows: Vec<Vec<u32>> = ids
        .chunks(shape[1])
        .map(|w| w.iter().map(|&t| t as u32).collect())
        .collect();
    let bos = model.cfg().bos_token_id.or(model.cfg().eos_token_id);
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["pass", f] => {
                let features = match f {
                    "all" => None,
                    n => Some((0..n.parse::<usize>()?).collect()),
                };
                let opts = GatherOptions {
                    progress: false,
                    windows_per_forward: 8,
                    features,
                    ..GatherOptions::default()
                };
                let start = Instant::now();
                match gather(&model, &sae, &windows, bos, &opts) {
                    Ok(_) => format!("ok {:.6} {}", start.elapsed().as_secs_f64(), peak_rss_kib()),
                    Err(e) => format!("err {e}"),
                }
            }
            _ => format!("err unknown request {line:?}"),
        };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}
