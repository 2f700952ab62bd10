//! `interp geometry …`: feature geometry of SAEs (interp-geometry).

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::time::Instant;

use interp_geometry::extremes::Neighbors;
use interp_geometry::matching::{permutation_match, sparse_assignment, Assignment};
use interp_geometry::prelude::*;
use interp_sae::{Format, Sae};
use serde_json::{json, Value};

/// The geometry subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GeometryCommand {
    /// Exhaustive all-pairs extremes: the N most aligned and most opposed feature pairs (i < j)
    /// of one SAE matrix, or between two SAEs with --sae-b. Writes
    /// {"most_aligned":[{"i","j","cos"}...], "most_opposed":[...]}.
    #[command(after_help = "Examples:
  interp geometry extremes --sae assets/toy/saes/blocks.2.hook_resid_pre --top 20 --out extremes.json
  interp geometry extremes --sae assets/toy/saes/blocks.2.hook_resid_pre --matrix enc --out extremes.enc.json
  interp geometry extremes --sae assets/toy/saes/blocks.2.hook_resid_pre --sae-b assets/toy/saes/blocks.3.hook_resid_pre --out across.json")]
    Extremes(ExtremesArgs),
    /// Concept-pair analysis (antonyms vs a seeded random baseline, Mann–Whitney U and
    /// permutation tests) on decoder and encoder, with self-similarity control.
    #[command(after_help = "Examples:
  interp geometry pairs --sae assets/toy/saes/blocks.2.hook_resid_pre --pairs antonyms.json --out pairs.json \\
      --markdown pairs.md --plot pairs.png
  where antonyms.json is
  {\"pairs\":[{\"name\":\"happy/sad\",\"a\":{\"name\":\"happy\",\"features\":[3,17]},\"b\":{\"name\":\"sad\",\"features\":[5]}}]}")]
    Pairs(PairsArgs),
    /// Cross-SAE matching: top-k matches by cosine from every feature of A into B, optionally a
    /// one-to-one assignment.
    #[command(after_help = "Examples:
  interp geometry match --sae-a assets/toy/saes/blocks.2.hook_resid_post \\
      --sae-b assets/toy/saes/blocks.2.hook_resid_pre --top-k 5 --out match.json
  interp geometry match --sae-a a/ --sae-b b/ --assignment sparse --out assignment.json")]
    Match(MatchArgs),
    /// Per-feature top-k nearest neighbours within one SAE matrix.
    #[command(after_help = "Examples:
  interp geometry neighbors --sae assets/toy/saes/blocks.2.hook_resid_pre -k 5 --out neighbors.json")]
    Neighbors(NeighborsArgs),
    /// Orthogonality (Gram) statistics, encoder–decoder self-similarity and antipodality.
    #[command(after_help = "Examples:
  interp geometry stats --sae assets/toy/saes/blocks.2.hook_resid_pre
  interp geometry stats --sae assets/toy/saes/blocks.2.hook_resid_pre --top 20 --out stats.json")]
    Stats(StatsArgs),
    /// Cosine matrix of chosen features (JSON, and a PNG/SVG heatmap by extension).
    #[command(after_help = "Examples:
  interp geometry heatmap --sae assets/toy/saes/blocks.2.hook_resid_pre --features 0,1,2,3,4,5 --out heatmap.png
  interp geometry heatmap --sae assets/toy/saes/blocks.2.hook_resid_pre --features 0,1,2 \\
      --sae-b assets/toy/saes/blocks.3.hook_resid_pre --features-b 7,8,9 --out cross.svg")]
    Heatmap(HeatmapArgs),
}

/// An SAE path and optional format.
#[derive(clap::Args, Debug)]
pub struct Source {
    /// SAE directory or file (any format `interp sae` reads).
    #[arg(long)]
    sae: PathBuf,
    /// Force a format instead of detecting it.
    #[arg(long)]
    format: Option<String>,
}

fn load(path: &Path, format: Option<&str>) -> Result<Sae, interp_sae::Error> {
    let format = match format {
        Some(name) => name.parse()?,
        None => Format::detect(path)?,
    };
    format.load(path)
}

/// Arguments of `interp geometry extremes`.
#[derive(clap::Args, Debug)]
pub struct ExtremesArgs {
    #[command(flatten)]
    source: Source,
    /// Compare against this second SAE (all i of --sae against all j of --sae-b).
    #[arg(long)]
    sae_b: Option<PathBuf>,
    /// Feature directions: decoder rows or encoder columns.
    #[arg(long, default_value = "dec")]
    matrix: Matrix,
    /// Pairs to keep at each end.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output JSON file.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `interp geometry pairs`.
#[derive(clap::Args, Debug)]
pub struct PairsArgs {
    #[command(flatten)]
    source: Source,
    /// JSON pair set: {"pairs":[{"name":..,"a":{"name":..,"features":[..]},"b":{..}}, ...]}.
    #[arg(long)]
    pairs: PathBuf,
    /// Random baseline samples (size-matched random concept pairs).
    #[arg(long, default_value_t = 1000)]
    random: usize,
    /// Seed of the baseline and permutations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Permutations of the permutation test.
    #[arg(long, default_value_t = 10_000)]
    permutations: usize,
    /// Output JSON file.
    #[arg(long)]
    out: PathBuf,
    /// Also write the summary tables as markdown.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also draw histograms of mean pair cosines vs random (PNG/SVG; `.dec`/`.enc` inserted
    /// before the extension).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Arguments of `interp geometry match`.
#[derive(clap::Args, Debug)]
pub struct MatchArgs {
    /// SAE A (its features are matched).
    #[arg(long)]
    sae_a: PathBuf,
    /// SAE B (the candidates).
    #[arg(long)]
    sae_b: PathBuf,
    /// Matches kept per feature of A.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Feature directions: decoder rows or encoder columns.
    #[arg(long, default_value = "dec")]
    matrix: Matrix,
    /// One-to-one assignment too: `dense` (exact on the full cosine matrix, moderate sizes) or
    /// `sparse` (exact on the top-k candidates, unmatched allowed at cosine `--fallback`).
    #[arg(long, value_parser = ["none", "dense", "sparse"], default_value = "none")]
    assignment: String,
    /// Score of leaving a feature unmatched in the sparse assignment.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    fallback: f32,
    /// Output JSON file.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `interp geometry neighbors`.
#[derive(clap::Args, Debug)]
pub struct NeighborsArgs {
    #[command(flatten)]
    source: Source,
    /// Feature directions: decoder rows or encoder columns.
    #[arg(long, default_value = "dec")]
    matrix: Matrix,
    /// Neighbours per feature.
    #[arg(long, short, default_value_t = 10)]
    k: usize,
    /// Output JSON file.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `interp geometry stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    source: Source,
    /// Features listed at each end of the self-similarity and antipodality rankings.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output JSON file (printed to stdout if absent).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `interp geometry heatmap`.
#[derive(clap::Args, Debug)]
pub struct HeatmapArgs {
    #[command(flatten)]
    source: Source,
    /// Features (rows), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<usize>,
    /// Column SAE (default: the same SAE).
    #[arg(long)]
    sae_b: Option<PathBuf>,
    /// Column features (default: the row features).
    #[arg(long, value_delimiter = ',')]
    features_b: Vec<usize>,
    /// Feature directions: decoder rows or encoder columns.
    #[arg(long, default_value = "dec")]
    matrix: Matrix,
    /// Output: `.json` for the matrix, `.png` / `.svg` for a heatmap.
    #[arg(long)]
    out: PathBuf,
}

/// Runs a `geometry` subcommand.
pub fn run(cmd: GeometryCommand) -> Result<(), Box<dyn StdError>> {
    match cmd {
        GeometryCommand::Extremes(a) => extremes(a),
        GeometryCommand::Pairs(a) => pairs(a),
        GeometryCommand::Match(a) => matching(a),
        GeometryCommand::Neighbors(a) => neighbors(a),
        GeometryCommand::Stats(a) => stats(a),
        GeometryCommand::Heatmap(a) => heatmap(a),
    }
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<(), Box<dyn StdError>> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    interp_core::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn extremes(a: ExtremesArgs) -> Result<(), Box<dyn StdError>> {
    let sae = load(&a.source.sae, a.source.format.as_deref())?;
    let dirs = Directions::of(&sae, a.matrix);
    let t = Instant::now();
    let ex = match &a.sae_b {
        Some(b) => cross_extremes(&dirs, &Directions::of(&load(b, None)?, a.matrix), a.top)?,
        None => all_pairs_extremes(&dirs, a.top),
    };
    write_json(&a.out, &ex)?;
    let fmt =
        |p: Option<&Pair>| p.map_or("-".into(), |p| format!("({}, {}) {:.4}", p.i, p.j, p.cos));
    say!(
        "{} {} directions: most aligned {}, most opposed {} ({:.2} s) → {}",
        dirs.len(),
        a.matrix.long_name(),
        fmt(ex.most_aligned.first()),
        fmt(ex.most_opposed.first()),
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn with_suffix(path: &Path, tag: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("plot");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("png");
    path.with_file_name(format!("{stem}.{tag}.{ext}"))
}

fn pairs(a: PairsArgs) -> Result<(), Box<dyn StdError>> {
    let sae = load(&a.source.sae, a.source.format.as_deref())?;
    let set = PairSet::from_json_file(&a.pairs)?;
    let cfg = PairConfig {
        random: a.random,
        seed: a.seed,
        permutations: a.permutations,
    };
    let report = analyze_sae_pairs(&sae, &set, &cfg)?;
    write_json(&a.out, &report)?;
    let md = report.to_markdown();
    if let Some(path) = &a.markdown {
        interp_core::write_atomic(path, md.as_bytes())?;
    }
    if let Some(path) = &a.plot {
        for m in &report.matrices {
            let tag = match m.matrix {
                Matrix::Dec => "dec",
                Matrix::Enc => "enc",
            };
            interp_geometry::plot::pair_histogram(&with_suffix(path, tag), m, 30)?;
        }
    }
    say!("{md}");
    say!("→ {}", a.out.display());
    Ok(())
}

fn neighbors_json(nb: &Neighbors) -> Value {
    let rows: Vec<Value> = (0..nb.len())
        .map(|i| {
            let (j, c) = nb.row(i);
            json!({"i": i, "j": j, "cos": c})
        })
        .collect();
    json!({"k": nb.k, "matches": rows})
}

fn assignment_json(asg: &Assignment) -> Value {
    json!({
        "matched": asg.matched,
        "total": asg.total,
        "mean": if asg.matched > 0 { asg.total / asg.matched as f64 } else { 0.0 },
        "j": asg.matches,
        "cos": asg.scores.iter().map(|&s| if s.is_finite() { json!(s) } else { Value::Null }).collect::<Vec<_>>(),
    })
}

fn matching(a: MatchArgs) -> Result<(), Box<dyn StdError>> {
    let (sa, sb) = (load(&a.sae_a, None)?, load(&a.sae_b, None)?);
    let (da, db) = (Directions::of(&sa, a.matrix), Directions::of(&sb, a.matrix));
    let t = Instant::now();
    let top = top_k_matches(&da, &db, a.top_k)?;
    let mut out = neighbors_json(&top);
    out["d_sae_a"] = json!(da.len());
    out["d_sae_b"] = json!(db.len());
    out["matrix"] = json!(a.matrix);
    let mean_top1 = if top.k > 0 && !top.is_empty() {
        (0..top.len()).map(|i| top.row(i).1[0] as f64).sum::<f64>() / top.len() as f64
    } else {
        0.0
    };
    out["mean_top1_cos"] = json!(mean_top1);
    let asg = match a.assignment.as_str() {
        "dense" => Some(permutation_match(&da, &db, 1 << 28)?),
        "sparse" => Some(sparse_assignment(&top, db.len(), a.fallback)?),
        _ => None,
    };
    if let Some(asg) = &asg {
        out["assignment"] = assignment_json(asg);
    }
    write_json(&a.out, &out)?;
    say!(
        "{} features of A into {} of B: mean top-1 cosine {:.4}{} ({:.2} s) → {}",
        da.len(),
        db.len(),
        mean_top1,
        asg.map_or(String::new(), |x| format!(
            ", assignment: {} matched, mean cosine {:.4}",
            x.matched,
            x.total / x.matched.max(1) as f64
        )),
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn neighbors(a: NeighborsArgs) -> Result<(), Box<dyn StdError>> {
    let sae = load(&a.source.sae, a.source.format.as_deref())?;
    let dirs = Directions::of(&sae, a.matrix);
    let nb = nearest_neighbors(&dirs, a.k);
    write_json(&a.out, &neighbors_json(&nb))?;
    say!(
        "top-{} neighbours of {} features → {}",
        nb.k,
        dirs.len(),
        a.out.display()
    );
    Ok(())
}

fn ranked(values: &[f32], top: usize) -> Value {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&x, &y| values[y].total_cmp(&values[x]).then(x.cmp(&y)));
    let pick = |it: &mut dyn Iterator<Item = &usize>| -> Vec<Value> {
        it.take(top)
            .map(|&i| json!({"feature": i, "value": values[i]}))
            .collect()
    };
    json!({"highest": pick(&mut idx.iter()), "lowest": pick(&mut idx.iter().rev())})
}

fn stats(a: StatsArgs) -> Result<(), Box<dyn StdError>> {
    let sae = load(&a.source.sae, a.source.format.as_deref())?;
    let (enc, dec) = (Directions::encoder(&sae), Directions::decoder(&sae));
    let ss = self_similarity(&sae);
    let anti = antipodality(&enc, &dec)?;
    let scores: Vec<f32> = anti.iter().map(|x| x.score).collect();
    let summary = |v: &[f32]| {
        let f: Vec<f64> = v
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| x as f64)
            .collect();
        interp_geometry::stats::summarize(&f)
    };
    let out = json!({
        "d_sae": sae.d_sae(),
        "d_in": sae.d_in(),
        "gram": {
            "decoder": gram_json(interp_geometry::gram_stats(sae.weights().w_dec.view())),
            "encoder": gram_json(interp_geometry::gram_stats(sae.weights().w_enc.t())),
        },
        "self_similarity": {"summary": summary(&ss), "features": ranked(&ss, a.top)},
        "antipodality": {"summary": summary(&scores), "features": ranked(&scores, a.top),
            "partners": anti.iter().map(|x| x.partner).collect::<Vec<_>>()},
    });
    match &a.out {
        Some(path) => {
            write_json(path, &out)?;
            say!("→ {}", path.display());
        }
        None => say!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(())
}

fn gram_json(g: interp_geometry::GramStats) -> Value {
    json!({
        "mean_abs_off_diagonal": g.mean_abs_off_diagonal,
        "max_abs_off_diagonal": g.max_abs_off_diagonal,
        "rms_off_diagonal": g.rms_off_diagonal,
    })
}

fn heatmap(a: HeatmapArgs) -> Result<(), Box<dyn StdError>> {
    let sae = load(&a.source.sae, a.source.format.as_deref())?;
    let rows = Directions::of(&sae, a.matrix);
    let cols = match &a.sae_b {
        Some(b) => Directions::of(&load(b, None)?, a.matrix),
        None => rows.clone(),
    };
    let fb = if a.features_b.is_empty() {
        a.features.clone()
    } else {
        a.features_b.clone()
    };
    let m = similarity_matrix(&rows, &a.features, &cols, &fb)?;
    let ext = a.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("json") {
        let out = json!({
            "rows": a.features,
            "cols": fb,
            "cos": m.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        });
        write_json(&a.out, &out)?;
    } else {
        let labels = |v: &[usize]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        interp_geometry::plot::cosine_heatmap(
            &a.out,
            &format!("{} cosine similarity", a.matrix.long_name()),
            &labels(&a.features),
            &labels(&fb),
            m.view(),
        )?;
    }
    say!(
        "{} x {} cosine matrix → {}",
        m.nrows(),
        m.ncols(),
        a.out.display()
    );
    Ok(())
}
