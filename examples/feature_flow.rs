//! Seed 003 (Laptev et al., *Analyze Feature Flow*, ICML 2025), reproduced on the toy world:
//! data-free matching of every residual feature to its predecessors, a flow graph of a mood
//! feature, predecessor groups over a corpus, deactivation of predecessors, and multi-layer
//! steering along the graph against single-layer steering.
//!
//! ```text
//! cargo run --release --example feature_flow [-- --out DIR]
//! cargo run --release --features hub --example feature_flow -- --model google/gemma-2-2b \
//!     --release gemma-scope-2b-pt-res-canonical --release gemma-scope-2b-pt-mlp-canonical \
//!     --release gemma-scope-2b-pt-att-canonical --feature 12/res/4230 --corpus fineweb.jsonl
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use interp::flow::export;
use interp::flow::prelude::*;
use interp::flow::{plan_for_nodes, FlowReport, PredecessorMethod, SteerOptions, SteeringRow};
use interp::flow::{Deactivation, DeactivationOptions, GroupOptions, PredecessorGroups};
use interp::models::prelude::*;
use interp::steer::prelude::*;
use interp::subject::{toy_mood_feature, StackArgs, StackSubject};
use interp::toy::corpus::{words_of_moods, Lang, Mood};

/// Feature flow graphs, predecessor groups, deactivation and multi-layer steering (seed 003).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    subject: StackArgs,
    /// The start feature (default on the toy world: the happy feature of `1/res`).
    #[arg(long)]
    feature: Option<NodeId>,
    /// Texts read for groups and deactivation.
    #[arg(long, default_value_t = 48)]
    texts: usize,
    /// Samples per steering setting.
    #[arg(long, default_value_t = 48)]
    samples: usize,
    /// Output directory.
    #[arg(long, default_value = "out/feature_flow")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let StackSubject { model, stack, toy } = args.subject.load()?;
    println!("SAE stack: {}", stack.describe());

    // 1. Data-free matching: top-5 and permutation tables for every layer.
    let tables = MatchTables::compute(&stack, 5)?;
    tables.save(&args.out.join("tables.safetensors"))?;
    let permutation = MatchTables::compute_with(&stack, 5, MatchMethod::Permutation, &|_, _| {})?;

    // 2. The flow graph of the start feature, both ways, in every format.
    let start = match args.feature {
        Some(f) => f,
        None => NodeId::res(
            1,
            toy_mood_feature(&model, &stack.get(1, Module::Res)?.sae, Mood::Happy)?,
        ),
    };
    let opts = GraphOptions {
        direction: FlowDirection::Both,
        ..Default::default()
    };
    let graph = FlowGraph::build(&tables, start, &opts)?;
    export::write_all(
        &graph,
        &args.out,
        "flow_graph",
        &format!("Flow graph of {start}"),
    )?;
    println!(
        "flow graph of {start}: {} nodes, {} edges",
        graph.nodes.len(),
        graph.edges.len()
    );

    // 3. Predecessor groups and deactivation over a corpus.
    let texts = args.subject.texts(&model, args.texts)?;
    let groups =
        PredecessorGroups::compute(&model, &stack, &tables, &texts, &GroupOptions::default())?;
    groups.write(&args.out.join("groups"))?;
    let deact_opts = DeactivationOptions {
        factors: vec![-1.0, 0.0, 0.5],
        methods: PredecessorMethod::ALL.to_vec(),
        max_features: 4,
        tokens_per_text: 2,
        ..Default::default()
    };
    let half = &texts[..texts.len().min(args.texts / 2).max(1)];
    let deact = Deactivation::run(
        &model,
        &stack,
        &tables,
        Some(&permutation),
        half,
        &deact_opts,
    )?;
    deact.write(&args.out.join("deactivation"))?;

    // 4. Multi-layer steering along the graph against the start feature alone.
    let mood_words = words_of_moods(&[Mood::Happy]);
    let all_moods = words_of_moods(&Mood::ALL);
    let share = LexiconRate::among("happy_share", mood_words, all_moods);
    let fluency = UnsteeredLogProb::new(&model);
    let prompt = match toy {
        true => interp::toy::corpus::neutral_prompt(Lang::En),
        false => "I think ",
    };
    let exp = Experiment::new(&model, model.to_tokens(prompt, true)?)
        .options(GenerateOptions {
            max_new_tokens: 24,
            seed: 3,
            ..Default::default()
        })
        .samples(args.samples)
        .scorers(vec![&share, &fluency, &DistinctN(2)]);
    let res = [Module::Res];
    let (l_start, l_end) = layer_span(&graph);
    let settings = [
        ("single layer", vec![start], Schedule::Constant),
        (
            "graph, constant",
            graph.nodes_where(&res, None),
            Schedule::Constant,
        ),
        (
            "graph, exponential",
            graph.nodes_where(&res, None),
            Schedule::Exponential { alpha: -0.05 },
        ),
        (
            "graph, linear",
            graph.nodes_where(&res, None),
            Schedule::Linear {
                l_start,
                l_end,
                s_end: 1.0,
            },
        ),
    ];
    let mut steering = Vec::new();
    for (label, nodes, schedule) in settings {
        for coefficient in [0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0] {
            let opts = SteerOptions {
                coefficient,
                schedule,
                ..Default::default()
            };
            let r = exp.run(label, &plan_for_nodes(&stack, &nodes, &opts)?)?;
            println!("{label:20} ×{coefficient:4}: {:?}", r.scores);
            let (label, features, scores) = (label.to_string(), nodes.len(), r.scores);
            steering.push(SteeringRow {
                label,
                features,
                coefficient,
                scores,
            });
        }
    }
    let report = FlowReport {
        source: format!(
            "{} ({})",
            args.subject.model.as_deref().unwrap_or("toy world"),
            stack.describe()
        ),
        start,
        graph: &graph,
        groups: Some(&groups),
        deactivation: Some(&deact),
        steering: &steering,
        steering_keys: ("happy_share".into(), "unsteered_log_prob".into(), 0.5),
    };
    report.write(&args.out)?;
    println!("{}", report.to_markdown());
    Ok(())
}

fn layer_span(graph: &FlowGraph) -> (usize, usize) {
    let layers = graph.nodes.iter().map(|n| n.layer);
    (layers.clone().min().unwrap_or(0), layers.max().unwrap_or(0))
}
