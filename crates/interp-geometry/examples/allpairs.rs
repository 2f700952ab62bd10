//! Full-size all-pairs extremes on random directions (or a loaded SAE), with timings.
//!
//! ```sh
//! cargo run --release -p interp-geometry --example allpairs -- 16384 2304
//! cargo run --release -p interp-geometry --features blas --example allpairs -- 131072 768
//! cargo run --release -p interp-geometry --example allpairs -- --sae <PATH> [--matrix enc]
//! ```
//!
//! Options: `--top N` (10), `--neighbors K` (also time per-feature top-K neighbours),
//! `--antipodality` (random encoder too, or the SAE's), `--seed S`, `--gemm-only` (also time the
//! bare GEMM tiles, the floor of every search).

use std::time::Instant;

use interp_geometry::prelude::*;
use interp_geometry::TileShape;
use ndarray::Array2;

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut v = vec![0f32; rows * cols];
    let mut s = seed | 1;
    for x in v.iter_mut() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (s >> 40) as f32 / (1u64 << 24) as f32;
        let b = ((s >> 16) & 0xFF_FFFF) as f32 / (1u64 << 24) as f32;
        *x = a + b - 1.0;
    }
    Array2::from_shape_vec((rows, cols), v).expect("shape")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|p| args.get(p + 1))
            .cloned()
    };
    let positional: Vec<usize> = args
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let top: usize = flag("--top").map_or(Ok(10), |v| v.parse())?;
    let seed: u64 = flag("--seed").map_or(Ok(0), |v| v.parse())?;
    let t = Instant::now();
    let (dirs, enc) = if let Some(path) = flag("--sae") {
        let sae = interp_sae::load(std::path::Path::new(&path))?;
        let matrix: Matrix = flag("--matrix").unwrap_or_else(|| "dec".into()).parse()?;
        let enc = args
            .iter()
            .any(|a| a == "--antipodality")
            .then(|| Directions::encoder(&sae));
        (Directions::of(&sae, matrix), enc)
    } else {
        let f = positional.first().copied().unwrap_or(16384);
        let d = positional.get(1).copied().unwrap_or(2304);
        let w = random(f, d, seed);
        let enc = args
            .iter()
            .any(|a| a == "--antipodality")
            .then(|| Directions::from_rows(random(f, d, seed + 1).view()))
            .transpose()?;
        (Directions::from_rows(w.view())?, enc)
    };
    println!(
        "directions: {} x {} (prepared in {:.2} s)",
        dirs.len(),
        dirs.dim(),
        t.elapsed().as_secs_f64()
    );
    let tile = match flag("--tile") {
        Some(t) => {
            let (r, c) = t.split_once('x').ok_or("--tile ROWSxCOLS")?;
            TileShape {
                rows: r.parse()?,
                cols: c.parse()?,
            }
        }
        None => TileShape::default(),
    };
    if args.iter().any(|a| a == "--gemm-only") {
        // The GEMM floor: the same tiles with nothing done per tile.
        let t = Instant::now();
        let mut tiles = 0usize;
        interp_core::tiles::for_each_tile(dirs.unit(), None, tile, |_| tiles += 1);
        println!(
            "GEMM tiles only ({tiles} tiles): {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let ex = interp_geometry::extremes_with(&dirs, None, top, tile)?;
    let s = t.elapsed().as_secs_f64();
    let flops = (dirs.len() as f64).powi(2) * dirs.dim() as f64; // upper triangle: F²/2 · 2d
    println!(
        "all-pairs extremes (top {top}): {s:.2} s, {:.1} GFLOP/s on the upper triangle",
        flops / s / 1e9
    );
    for (name, list) in [
        ("most aligned", &ex.most_aligned),
        ("most opposed", &ex.most_opposed),
    ] {
        let shown: Vec<String> = list
            .iter()
            .take(3)
            .map(|p| format!("({}, {}) {:.4}", p.i, p.j, p.cos))
            .collect();
        println!("  {name}: {}", shown.join(", "));
    }
    if let Some(k) = flag("--neighbors") {
        let k: usize = k.parse()?;
        let t = Instant::now();
        let nb = nearest_neighbors(&dirs, k);
        println!(
            "top-{k} neighbours of every feature: {:.2} s (feature 0: {:?})",
            t.elapsed().as_secs_f64(),
            nb.row(0)
        );
    }
    if let Some(n) = flag("--lap") {
        // One-to-one matching of the first n features against a noisy, shuffled copy of them.
        let n: usize = n.parse::<usize>()?.min(dirs.len());
        let a = dirs.select(&(0..n).collect::<Vec<_>>())?;
        let shuffled: Vec<usize> = (0..n).map(|i| (i * 7919 + 13) % n).collect();
        let noise = random(n, dirs.dim(), seed + 7) * (1.0 / (dirs.dim() as f32).sqrt());
        let b = Directions::from_rows((&a.select(&shuffled)?.unit() + &noise).view())?;
        let t = Instant::now();
        let dense = permutation_match(&a, &b, usize::MAX)?;
        let t_dense = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let top = top_k_matches(&a, &b, 8)?;
        let sparse = interp_geometry::sparse_assignment(&top, n, 0.0)?;
        println!(
            "assignment {n}x{n}: dense LAP {t_dense:.2} s (mean cos {:.4}), top-8 + sparse LAP {:.2} s (mean cos {:.4}, {} matched)",
            dense.total / n as f64,
            t.elapsed().as_secs_f64(),
            sparse.total / sparse.matched.max(1) as f64,
            sparse.matched
        );
    }
    if let Some(enc) = enc {
        let t = Instant::now();
        let a = antipodality(&enc, &dirs)?;
        let best = a
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.score.total_cmp(&y.1.score))
            .map(|(i, a)| (i, *a));
        println!(
            "antipodality: {:.2} s (max: {best:?})",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
