#![allow(missing_docs)]
//! The Rust side of `benches/paired_anchors.py`: a worker that runs one benchmark call per
//! request, so that the driver can interleave it call by call with the Python anchor it is
//! compared with (on a shared machine the load changes from minute to minute; two calls a
//! second apart see the same load, two runs of separate scripts do not).
//!
//! Protocol (with `INTERP_PAIRED=serve`; otherwise it prints this and exits, so that a plain
//! `cargo bench` never waits for input): one request per line on stdin, one reply per line on
//! stdout, `ok <seconds>` or `err <message>`.
//! - `gpt2 forward`, `gpt2 run_with_cache` — the workloads of `gpt2_forward.rs`;
//! - `sae <case> <op>` — `case` one of `sae_kernels.rs`' (`relu_768x24576`, …), `op` one of
//!   `encode_dense`, `encode_sparse`, `decode_sparse`, `forward`, as there. Only the latest
//!   case is kept in memory.
//! - `family forward gemma2|llama` — the forward of `family_forward.rs` (1 × 256 tokens on
//!   the Gemma-2-2B-shaped 6-layer or the Llama-3.2-1B-shaped model). Only the latest family
//!   is kept in memory.
//! - `steer generate` — the steered generation of `steer_generate.rs` (8 samples × 64 tokens).
//! - `flow tables [F]` — one layer's call of `flow_tables.rs`: layer 1 of the random
//!   Gemma-2-2B-shaped stack with `F` features per SAE (default 16384), `A_1` mapped through
//!   `W_O` and the three top-1 tables of `R_1`. Only the latest `F` is kept in memory.

mod common;

use interp::models::prelude::*;
use std::io::{BufRead, Write};
use std::time::Instant;

#[derive(Default)]
struct Worker {
    gpt2: Option<(HookedTransformer<Cpu>, Batch)>,
    family: Option<(String, HookedTransformer<Cpu>, Batch)>,
    sae: Option<common::SaeCase>,
    steer: Option<common::SteerCase>,
    flow: Option<common::FlowLayer>,
}

impl Worker {
    /// Seconds taken by one call of the requested workload (set-up not included).
    fn time(&mut self, request: &str) -> Result<f64, String> {
        let words: Vec<&str> = request.split_whitespace().collect();
        match words[..] {
            ["gpt2", op] => {
                let (model, batch) = self.gpt2.get_or_insert_with(common::gpt2_small);
                let start = Instant::now();
                match op {
                    "forward" => model.forward(batch).map(drop),
                    "run_with_cache" => model.run_with_cache(batch, common::resid_pre()).map(drop),
                    _ => return Err(format!("unknown gpt2 op {op}")),
                }
                .map_err(|e| e.to_string())?;
                Ok(start.elapsed().as_secs_f64())
            }
            ["family", "forward", name] => {
                if self.family.as_ref().is_none_or(|(n, ..)| n != name) {
                    self.family = None; // free the previous model first
                    let (model, batch) = common::family_model(name)?;
                    self.family = Some((name.to_string(), model, batch));
                }
                let (_, model, batch) = self.family.as_ref().expect("just set");
                let start = Instant::now();
                model.forward(batch).map_err(|e| e.to_string())?;
                Ok(start.elapsed().as_secs_f64())
            }
            ["sae", case, op] => {
                if self.sae.as_ref().is_none_or(|c| c.name != case) {
                    self.sae = None; // free the previous case first
                    self.sae = Some(common::SaeCase::named(case)?);
                }
                let case = self.sae.as_ref().expect("just set");
                let start = Instant::now();
                case.run(op)?;
                Ok(start.elapsed().as_secs_f64())
            }
            ["steer", "generate"] => {
                let case = self.steer.get_or_insert_with(common::SteerCase::new);
                let start = Instant::now();
                case.run()?;
                Ok(start.elapsed().as_secs_f64())
            }
            ["flow", "tables", ref f @ ..] if f.len() <= 1 => {
                let d_sae = match f {
                    [f] => f.parse().map_err(|_| format!("bad feature count {f:?}"))?,
                    _ => common::FlowShape::GEMMA2_2B.d_sae,
                };
                let shape = common::FlowShape::gemma2_2b(2, d_sae);
                if self.flow.as_ref().is_none_or(|l| l.shape != shape) {
                    self.flow = None; // free the previous layer first
                    self.flow = Some(common::FlowLayer::new(shape, 1, common::FlowEncoders::Zero));
                }
                let layer = self.flow.as_mut().expect("just set");
                let start = Instant::now();
                layer.tables(1);
                Ok(start.elapsed().as_secs_f64())
            }
            _ => Err(format!("unknown request {request:?}")),
        }
    }
}

fn main() {
    if std::env::var("INTERP_PAIRED").as_deref() != Ok("serve") {
        eprintln!(
            "paired: the worker of benches/paired_anchors.py (set INTERP_PAIRED=serve to run it)"
        );
        return;
    }
    let mut worker = Worker::default();
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match worker.time(&line) {
            Ok(seconds) => format!("ok {seconds:.6}"),
            Err(e) => format!("err {e}"),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}
