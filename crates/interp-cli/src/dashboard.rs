//! `interp dashboard`: feature dashboards of an SAE over a corpus, as a static offline site.

use std::error::Error as StdError;
use std::path::PathBuf;

use clap::Args;
use interp_dashboard::prelude::*;
use interp_dashboard::StatsShape;
use interp_flow::{export, GraphOptions, MatchTables, SaeStack};
use interp_models::prelude::*;

/// `interp dashboard`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  interp dashboard --sae assets/toy/saes/blocks.2.hook_resid_post --corpus docs.jsonl \\
      --features top-50 --out dashboard/
  interp dashboard --model gpt2 --sae saes/gpt2-small-res-jb-l7 --corpus web.txt \\
      --features 0-99 --tokens 1000000 --explanations 7-res-jb.json --out gpt2-l7/")]
pub struct DashboardArgs {
    /// The model (directory or hub id; default: the toy world's).
    #[arg(long)]
    model: Option<String>,
    /// The SAE (any format `interp sae` reads); its config names the hook.
    #[arg(long)]
    sae: PathBuf,
    /// Text corpus: a .txt/.jsonl file or a directory of them.
    #[arg(long)]
    corpus: PathBuf,
    /// Features with a page: `all`, `top-N` (the N firing most often), or ids and ranges
    /// (`3,10-12`).
    #[arg(long, default_value = "top-100")]
    features: String,
    /// Tokens of context on either side of an example's token.
    #[arg(long, default_value_t = 5)]
    context: usize,
    /// Tokens to read from the corpus.
    #[arg(long, default_value_t = 65_536)]
    tokens: usize,
    /// Top activating tokens per feature.
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// Tokens per window (default: the SAE's context_size, else 128).
    #[arg(long)]
    context_size: Option<usize>,
    /// A Neuronpedia explanation export (JSON array or JSONL) to show.
    #[arg(long)]
    explanations: Option<PathBuf>,
    /// A directory of SAEs (as `interp flow --saes`) that holds this one: each page links its
    /// feature's backward flow graph.
    #[arg(long)]
    saes: Option<PathBuf>,
    /// Seed of the random examples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (index.html, index.json, features/, flow/).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `interp dashboard`.
pub fn run(a: DashboardArgs) -> Result<(), Box<dyn StdError>> {
    let model = match &a.model {
        Some(name) => HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?,
        None => interp_toy::ToyWorld::load()?.into_model(),
    };
    let sae = interp_sae::load(&a.sae)?;
    let selection: FeatureSelection = a.features.parse()?;
    let explanations = a
        .explanations
        .as_deref()
        .map(Explanations::read)
        .transpose()?;
    let corpus = interp_sae::store::Corpus::open(&a.corpus)?;
    let opts = GatherOptions {
        shape: StatsShape {
            top_k: a.top_k,
            ..StatsShape::default()
        },
        context: a.context,
        max_tokens: a.tokens,
        context_size: a.context_size,
        seed: a.seed,
        features: selection.tracked(sae.d_sae())?,
        ..GatherOptions::default()
    };
    let data = gather_corpus(&model, &sae, &corpus, &opts)?;
    let mut site_opts = DashboardOptions {
        explanations,
        ..DashboardOptions::default()
    };
    let shown = selection.pick(&data);
    if let Some(dir) = &a.saes {
        let stack = SaeStack::from_dir(dir)?;
        let node = |f| export::node_of_hook(&stack, &data.hook, f);
        if node(0).is_none() {
            return Err(
                format!("{}: no SAE of the set reads `{}`", dir.display(), data.hook).into(),
            );
        }
        let tables = MatchTables::compute(&stack, 5)?;
        let nodes: Vec<_> = shown.iter().filter_map(|&f| node(f)).collect();
        let names = export::write_feature_viewers(
            &tables,
            &nodes,
            &GraphOptions::default(),
            &a.out.join("flow"),
        )?;
        site_opts.flow_graphs = shown
            .iter()
            .zip(names)
            .map(|(&f, n)| (f, format!("flow/{n}")))
            .collect();
    }
    let site = Dashboard::build(&model, &sae, &data, &selection, &site_opts)?;
    site.write(&a.out)?;
    say!(
        "{} feature pages of {} ({} tokens, {:.1} s) → {}",
        site.features.len(),
        data.hook,
        data.counted,
        data.seconds,
        a.out.join("index.html").display()
    );
    Ok(())
}
