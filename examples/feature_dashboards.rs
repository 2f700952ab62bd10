//! Feature dashboards, as the write-ups read them off Neuronpedia ("I checked the feature 2392
//! in Neuronpedia and got its feature dashboard", seeds 000/001; 003 and 004 read every
//! feature through its dashboard), made offline for the toy world's SAEs.
//!
//! The toy world's mood features are found from the corpus labels (per word, the feature that
//! best separates a mood's words from all others, as `world.json`'s gates find them). One
//! streamed pass over held-out documents then gathers every feature's top activations, random
//! examples per activation band and histogram; each page adds the logit lens, the nearest
//! features by decoder cosine and a link to the feature's backward flow graph (seed 003). A
//! page's explanation field carries the planted label, as an imported Neuronpedia explanation
//! would. The index lists the mood features and the 50 features that fire most often.
//!
//! ```text
//! cargo run --release --example feature_dashboards [-- --out DIR --hook blocks.2.hook_resid_post]
//! ```
//! Then open `out/feature_dashboards/site/index.html`. For a real model and SAE (and a
//! Neuronpedia explanation export) the same pass is `interp dashboard --model gpt2 --sae DIR
//! --corpus FILE --explanations FILE --out DIR`.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::dashboard::prelude::*;
use interp::flow::{export, GraphOptions, MatchTables, SaeStack};
use interp::report::Report;
use interp::sae::store::Corpus;
use interp::toy::corpus::{generate, write_jsonl, CorpusConfig};
use interp::toy::eval::{best_mood_features, word_activations};
use interp::toy::ToyWorld;

/// Feature dashboards of a toy-world SAE.
#[derive(Parser)]
struct Args {
    /// The SAE's hook.
    #[arg(long, default_value = "blocks.2.hook_resid_post")]
    hook: String,
    /// Held-out documents read (seed 2, as the gates).
    #[arg(long, default_value_t = 400)]
    docs: usize,
    /// Tokens of the pass.
    #[arg(long, default_value_t = 32_768)]
    tokens: usize,
    /// The most frequently firing features shown besides the mood features.
    #[arg(long, default_value_t = 50)]
    top: usize,
    /// Output directory.
    #[arg(long, default_value = "out/feature_dashboards")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let world = ToyWorld::load()?;
    let model = world.model();
    let sae = world.sae(&args.hook)?;
    let docs = generate(&CorpusConfig {
        seed: 2,
        n_docs: args.docs,
        ..CorpusConfig::default()
    });

    // The mood features: per word (sub-tokens summed), the best feature of each mood.
    let hook = model.cfg().parse_hook(&args.hook)?;
    let words = word_activations(model, &docs, &[hook])?;
    let codes = sae.encode(words.acts[&hook].view())?;
    let moods = best_mood_features(&codes, &words.moods, 16)?;

    // One pass over the same documents.
    let corpus_path = args.out.join("heldout.jsonl");
    write_jsonl(&docs, &corpus_path)?;
    let opts = GatherOptions {
        max_tokens: args.tokens,
        ..GatherOptions::default()
    };
    let data = gather_corpus(model, &sae, &Corpus::open(&corpus_path)?, &opts)?;
    let mut shown = FeatureSelection::Top(args.top).pick(&data);
    shown.extend(moods.iter().map(|m| m.feature));
    shown.sort_unstable();
    shown.dedup();
    let selection = FeatureSelection::Ids(shown.clone());

    // Each page's explanation: the planted mood it separates; and its flow graph.
    let explanations = Explanations {
        by_feature: moods
            .iter()
            .map(|m| {
                (
                    m.feature,
                    format!("mood: {} (word AUROC {:.3})", m.mood.name(), m.auroc),
                )
            })
            .collect(),
        source: None,
    };
    let site_dir = args.out.join("site");
    let stack = SaeStack::from_dir(&world.dir().join("saes"))?;
    let nodes: Vec<_> = shown
        .iter()
        .filter_map(|&f| export::node_of_hook(&stack, &args.hook, f))
        .collect();
    let mut flow_graphs = BTreeMap::new();
    if nodes.len() == shown.len() {
        let tables = MatchTables::compute(&stack, 5)?;
        let names = export::write_feature_viewers(
            &tables,
            &nodes,
            &GraphOptions::default(),
            &site_dir.join("flow"),
        )?;
        flow_graphs = shown
            .iter()
            .zip(names)
            .map(|(&f, n)| (f, format!("flow/{n}")))
            .collect();
    }
    let site_opts = DashboardOptions {
        title: Some(format!("Toy world features at {}", args.hook)),
        explanations: Some(explanations),
        flow_graphs,
        ..DashboardOptions::default()
    };
    let site = Dashboard::build(model, &sae, &data, &selection, &site_opts)?;
    site.write(&site_dir)?;

    // What the mood features' dashboards show.
    let mut report = Report::new(&args.out)?;
    report.line(format!("# Feature dashboards of `{}`\n", args.hook));
    report.line(format!(
        "{} tokens of {} held-out documents in {:.1} s; {} feature pages ([index](site/index.html)).\n",
        data.counted,
        args.docs,
        data.seconds,
        site.features.len()
    ));
    let mut rows = Vec::new();
    println!(
        "{:8} {:>7} {:>6} {:>8}  top tokens | promoted",
        "mood", "feature", "AUROC", "density"
    );
    for m in &moods {
        let v = site
            .features
            .iter()
            .find(|v| v.feature == m.feature)
            .expect("shown");
        let texts = |ids: &mut dyn Iterator<Item = u32>| {
            ids.map(|t| format!("{:?}", site.token(t)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let top = texts(&mut v.top_tokens.iter().copied());
        let promoted = v.logit_lens.as_ref().map_or(String::new(), |l| {
            texts(&mut l.promoted.iter().take(3).map(|p| p.0))
        });
        println!(
            "{:8} {:>7} {:>6.3} {:>7.3}%  {top} | {promoted}",
            m.mood.name(),
            m.feature,
            m.auroc,
            v.density * 100.0
        );
        rows.push(vec![
            m.mood.name().to_string(),
            format!("[{}](site/features/{}.html)", m.feature, m.feature),
            format!("{:.3}", m.auroc),
            format!("{:.3}%", v.density * 100.0),
            format!("{:.2}", v.max),
            top,
            promoted,
        ]);
    }
    let header = [
        "mood",
        "feature",
        "word AUROC",
        "density",
        "max",
        "top tokens",
        "promoted tokens",
    ];
    report.table(&header, rows)?;
    report.set("hook", &args.hook)?;
    report.set("tokens", data.counted)?;
    report.set("pages", site.features.len())?;
    report.set("mood_features", &moods)?;
    report.write()?;
    println!("site: {}", site_dir.join("index.html").display());
    Ok(())
}
