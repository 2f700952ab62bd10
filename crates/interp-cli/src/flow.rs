//! `interp flow`: cross-layer feature flow (seed 003) — matching tables, flow graphs with
//! their exports, predecessor groups and deactivation over a corpus.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use interp_flow::export;
use interp_flow::prelude::*;
use interp_flow::{
    Deactivation, DeactivationOptions, GroupOptions, PredecessorGroups, PredecessorMethod,
};
use interp_models::prelude::*;

/// Flow subcommands.
#[derive(Subcommand, Debug)]
pub enum FlowCommand {
    /// A flow graph from a feature: JSON, and optionally DOT, SVG, HTML and circuit-tracer JSON.
    #[command(
        after_help = "Example:\n  interp flow graph --saes assets/toy/saes --feature 2/res/10 --direction both \\\n      --out graph.json --html graph.html"
    )]
    Graph(GraphArgs),
    /// Every top-k matching table of an SAE stack, as safetensors.
    #[command(
        after_help = "Example:\n  interp flow tables --saes assets/toy/saes --out tables.safetensors"
    )]
    Tables(TablesArgs),
    /// Predecessor groups over a corpus (shares, score distributions, Mann–Whitney U, transitions).
    #[command(
        after_help = "Example:\n  interp flow groups --saes assets/toy/saes --corpus docs.jsonl --out groups/"
    )]
    Groups(GroupsArgs),
    /// Deactivate predecessors at the target's token and measure the target's activation change.
    #[command(
        after_help = "Example:\n  interp flow deactivate --saes assets/toy/saes --corpus docs.jsonl --r 0 --r -1 \\\n      --method top1 --method random_of_top5 --out deactivation/"
    )]
    Deactivate(DeactivateArgs),
}

/// Where the SAEs come from.
#[derive(Args, Debug)]
pub struct StackArgs {
    /// A directory whose subdirectories are SAEs in any supported format, each naming its hook.
    #[arg(long)]
    saes: PathBuf,
    /// The model (directory or hub id; default: the toy world's): maps `attn.hook_z` SAEs
    /// through W_O.
    #[arg(long)]
    model: Option<String>,
}

/// A stack, and the model when one was needed to load it.
type LoadedStack = (SaeStack, Option<HookedTransformer<Cpu>>);

impl StackArgs {
    fn load_model(&self) -> Result<HookedTransformer<Cpu>, Box<dyn StdError>> {
        Ok(match &self.model {
            Some(name) => HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?,
            None => interp_toy::ToyWorld::load()?.into_model(),
        })
    }

    /// The stack; the model is loaded only when an SAE reads `attn.hook_z`.
    fn load(&self) -> Result<LoadedStack, Box<dyn StdError>> {
        let mut stack = SaeStack::from_dir(&self.saes)?;
        let needs_model = stack.slots().any(|(_, e)| e.reads_z());
        let model = match needs_model {
            true => Some(self.load_model()?),
            false => None,
        };
        if let Some(m) = &model {
            stack.map_attention_z(m)?;
        }
        Ok((stack, model))
    }
}

/// `interp flow graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Saved tables (`interp flow tables`) to build from instead of matching now.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// The start feature, `L/res/I`.
    #[arg(long)]
    feature: NodeId,
    /// Which way the graph grows.
    #[arg(long, value_enum, default_value = "backward")]
    direction: DirectionArg,
    /// Residual chain threshold.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    t_res: f32,
    /// MLP / attention node threshold.
    #[arg(long, default_value_t = 0.15, allow_negative_numbers = true)]
    t_module: f32,
    /// Matches followed per predecessor kind.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// The graph JSON.
    #[arg(long)]
    out: PathBuf,
    /// Also write DOT here.
    #[arg(long)]
    dot: Option<PathBuf>,
    /// Also write SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Also write the HTML viewer here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Also write circuit-tracer graph JSON here.
    #[arg(long)]
    circuit_json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DirectionArg {
    Backward,
    Forward,
    Both,
}

/// `interp flow tables`.
#[derive(Args, Debug)]
pub struct TablesArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Matches kept per feature.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// The tables file (safetensors).
    #[arg(long)]
    out: PathBuf,
}

/// The corpus flags of `groups` and `deactivate`.
#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Text corpus: a .txt/.jsonl file or a directory of them.
    #[arg(long)]
    corpus: PathBuf,
    /// Texts read.
    #[arg(long, default_value_t = 250)]
    texts: usize,
    /// Random non-BOS tokens per text.
    #[arg(long, default_value_t = 5)]
    tokens_per_text: usize,
    /// Do not prepend BOS.
    #[arg(long)]
    no_bos: bool,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

impl CorpusArgs {
    fn tokens(&self, model: &HookedTransformer<Cpu>) -> Result<Vec<Vec<u32>>, Box<dyn StdError>> {
        let texts = interp_sae::store::Corpus::open(&self.corpus)?
            .documents()
            .take(self.texts)
            .collect::<Result<Vec<String>, _>>()?;
        let n_ctx = model.cfg().n_ctx;
        let mut out = model.to_tokens_each(&texts, !self.no_bos)?;
        out.iter_mut().for_each(|t| t.truncate(n_ctx));
        out.retain(|t| t.len() > 1);
        if out.is_empty() {
            return Err(
                format!("{}: the corpus tokenizes to nothing", self.corpus.display()).into(),
            );
        }
        Ok(out)
    }
}

/// `interp flow groups`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Count a predecessor active if any of its top-N matches is (1 or 5).
    #[arg(long, default_value_t = 1)]
    top_n: usize,
}

/// `interp flow deactivate`.
#[derive(Args, Debug)]
pub struct DeactivateArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Rescaling factors r (repeat; default 0).
    #[arg(long = "r", allow_negative_numbers = true)]
    r: Vec<f32>,
    /// Methods (repeat): top1, top5, random_of_top5, random_active_of_top5, permutation.
    #[arg(long)]
    method: Vec<String>,
    /// Target layers (repeat; default all).
    #[arg(long)]
    layer: Vec<usize>,
    /// Targets per layer and token, the most active first.
    #[arg(long, default_value_t = 25)]
    max_features: usize,
}

/// Runs a flow subcommand.
pub fn run(cmd: FlowCommand) -> Result<(), Box<dyn StdError>> {
    match cmd {
        FlowCommand::Graph(a) => graph(a),
        FlowCommand::Tables(a) => {
            let (stack, _) = a.stack.load()?;
            let tables = MatchTables::compute(&stack, a.top_k)?;
            tables.save(&a.out)?;
            eprintln!(
                "tables for {} written to {}",
                tables.describe(),
                a.out.display()
            );
            Ok(())
        }
        FlowCommand::Groups(a) => {
            let (stack, model) = a.stack.load()?;
            let model = model.map_or_else(|| a.stack.load_model(), Ok)?;
            let tables = MatchTables::compute(&stack, a.top_n.max(1))?;
            let texts = a.corpus.tokens(&model)?;
            let opts = GroupOptions {
                tokens_per_text: a.corpus.tokens_per_text,
                top_n: a.top_n,
                seed: a.corpus.seed,
                skip_first: !a.corpus.no_bos,
            };
            let groups = PredecessorGroups::compute(&model, &stack, &tables, &texts, &opts)?;
            groups.write(&a.corpus.out)?;
            say!("{}", serde_json::to_string_pretty(&groups.summary_json())?);
            Ok(())
        }
        FlowCommand::Deactivate(a) => deactivate(a),
    }
}

fn write_to(path: &Path, text: &str) -> Result<(), Box<dyn StdError>> {
    interp_core::io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn graph(a: GraphArgs) -> Result<(), Box<dyn StdError>> {
    let tables = match &a.tables {
        Some(path) => MatchTables::load(path)?,
        None => MatchTables::compute(&a.stack.load()?.0, a.top_k)?,
    };
    let opts = GraphOptions {
        direction: match a.direction {
            DirectionArg::Backward => FlowDirection::Backward,
            DirectionArg::Forward => FlowDirection::Forward,
            DirectionArg::Both => FlowDirection::Both,
        },
        thresholds: Thresholds {
            t_res: a.t_res,
            t_module: a.t_module,
            ..Default::default()
        },
        top_k: a.top_k,
    };
    let g = FlowGraph::build(&tables, a.feature, &opts)?;
    g.save(&a.out)?;
    let title = format!("Flow graph of {}", a.feature);
    if let Some(p) = &a.dot {
        write_to(p, &export::to_dot(&g))?;
    }
    if let Some(p) = &a.svg {
        write_to(p, &export::to_svg(&g, &title))?;
    }
    if let Some(p) = &a.html {
        write_to(p, &export::to_html(&g, &title))?;
    }
    if let Some(p) = &a.circuit_json {
        let slug = a.feature.to_string().replace('/', "-");
        write_to(
            p,
            &serde_json::to_string_pretty(&export::to_circuit_json(&g, &slug))?,
        )?;
    }
    eprintln!(
        "{} nodes, {} edges → {}",
        g.nodes.len(),
        g.edges.len(),
        a.out.display()
    );
    Ok(())
}

fn deactivate(a: DeactivateArgs) -> Result<(), Box<dyn StdError>> {
    let (stack, model) = a.stack.load()?;
    let model = model.map_or_else(|| a.stack.load_model(), Ok)?;
    let methods: Vec<PredecessorMethod> = match a.method.is_empty() {
        true => vec![PredecessorMethod::Top1, PredecessorMethod::RandomOfTop5],
        false => a
            .method
            .iter()
            .map(|m| m.parse())
            .collect::<Result<_, _>>()?,
    };
    let tables = MatchTables::compute(&stack, 5)?;
    let permutation = match methods.contains(&PredecessorMethod::Permutation) {
        true => Some(MatchTables::compute_with(
            &stack,
            5,
            MatchMethod::Permutation,
            &|_, _| {},
        )?),
        false => None,
    };
    let texts = a.corpus.tokens(&model)?;
    let opts = DeactivationOptions {
        layers: (!a.layer.is_empty()).then(|| a.layer.clone()),
        tokens_per_text: a.corpus.tokens_per_text,
        skip_first: !a.corpus.no_bos,
        max_features: a.max_features,
        factors: if a.r.is_empty() {
            vec![0.0]
        } else {
            a.r.clone()
        },
        methods,
        seed: a.corpus.seed,
    };
    let d = Deactivation::run(&model, &stack, &tables, permutation.as_ref(), &texts, &opts)?;
    d.write(&a.corpus.out)?;
    say!("{}", serde_json::to_string_pretty(&d.summary)?);
    Ok(())
}
