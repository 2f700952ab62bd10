//! Where an example's model and SAE come from: the toy world by default, or a model directory
//! / hub id with an SAE directory or SAELens release (hub ids and releases need the `hub`
//! feature).

use std::error::Error;
use std::path::Path;

use interp_models::{Cpu, HookPoint, HookedTransformer};
use interp_sae::Sae;
use interp_steer::{contrastive_features, TokenSelection};
use interp_toy::corpus::{mood_contexts_against_others, Lang, Mood};

/// A model and one SAE on it.
pub struct Subject {
    /// The model, with its tokenizer.
    pub model: HookedTransformer<Cpu>,
    /// The SAE.
    pub sae: Sae,
    /// The hook the SAE reads.
    pub hook: HookPoint,
    /// Whether this is the toy world.
    pub toy: bool,
    /// Where the model and SAE came from, for reports.
    pub source: String,
}

impl Subject {
    /// The SAE feature most active at the end of `mood`'s contexts against the other moods'
    /// (`interp_toy::corpus::mood_contexts_against_others`, English; the last token, where the
    /// next word is a mood word): the feature that makes the model produce that mood, for
    /// steering. `given` wins when set; without it a real model is an error (its write-up
    /// names the features).
    ///
    /// # Errors
    /// No `given` feature on a real model; model and SAE errors.
    pub fn mood_feature(&self, given: Option<usize>, mood: Mood) -> Result<usize, Box<dyn Error>> {
        if let Some(f) = given {
            return Ok(f);
        }
        if !self.toy {
            return Err(format!("--{} is needed with --model", mood.name()).into());
        }
        toy_mood_feature(&self.model, &self.sae, mood)
    }
}

/// On the toy world: the feature of `sae` most active at the end of `mood`'s contexts against
/// the other moods' (English; the last token, where the next word is a mood word).
///
/// # Errors
/// Model and SAE errors.
pub fn toy_mood_feature(
    model: &HookedTransformer<Cpu>,
    sae: &Sae,
    mood: Mood,
) -> Result<usize, Box<dyn Error>> {
    let (mine, others) = mood_contexts_against_others(mood, Lang::En);
    let mine = model.to_tokens_each(&mine, true)?;
    let others = model.to_tokens_each(&others, true)?;
    let last = TokenSelection::Last;
    Ok(contrastive_features(model, sae, &mine, &others, &last, 1)?[0].0)
}

/// A model and a stack of SAEs on it (interp-flow), as the flow examples load them.
pub struct StackSubject {
    /// The model, with its tokenizer.
    pub model: HookedTransformer<Cpu>,
    /// The SAEs, `attn.hook_z` ones already mapped through `W_O`.
    pub stack: interp_flow::SaeStack,
    /// Whether this is the toy world.
    pub toy: bool,
}

/// The flags that pick a flow example's model and SAE stack (flatten into a clap parser).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StackArgs {
    /// Model directory or hub id (default: the toy world).
    #[arg(long)]
    pub model: Option<String>,
    /// SAE directory, one SAE per subdirectory (default: the toy world's SAEs).
    #[arg(long)]
    pub saes: Option<std::path::PathBuf>,
    /// SAELens releases to stack instead of --saes (`hub` feature; `width_16k/canonical` ids).
    #[arg(long)]
    pub release: Vec<String>,
    /// Text corpus (.txt/.jsonl or a directory; default: the toy world's held-out documents).
    #[arg(long)]
    pub corpus: Option<std::path::PathBuf>,
}

impl StackArgs {
    /// Loads the model and the stack.
    ///
    /// # Errors
    /// Loading errors; `--model` without `--saes` or `--release`; a release without `hub`.
    pub fn load(&self) -> Result<StackSubject, Box<dyn Error>> {
        let (model, mut stack, toy) = match &self.model {
            None => {
                let world = interp_toy::ToyWorld::load()?;
                let dir = self
                    .saes
                    .clone()
                    .unwrap_or_else(|| world.dir().join("saes"));
                (
                    world.into_model(),
                    interp_flow::SaeStack::from_dir(&dir)?,
                    true,
                )
            }
            Some(name) => {
                let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?;
                let stack = match &self.saes {
                    Some(dir) => interp_flow::SaeStack::from_dir(dir)?,
                    None if !self.release.is_empty() => release_stack(&self.release)?,
                    None => return Err("--model needs --saes DIR or --release".into()),
                };
                (model, stack, false)
            }
        };
        stack.map_attention_z(&model)?;
        Ok(StackSubject { model, stack, toy })
    }

    /// Up to `n` texts of the corpus (or of the toy world's held-out documents, seed 2), as
    /// tokens with BOS, truncated to the model's context.
    ///
    /// # Errors
    /// Corpus and tokenizer errors.
    pub fn texts(
        &self,
        model: &HookedTransformer<Cpu>,
        n: usize,
    ) -> Result<Vec<Vec<u32>>, Box<dyn Error>> {
        let texts: Vec<String> = match &self.corpus {
            Some(path) => interp_sae::store::Corpus::open(path)?
                .documents()
                .take(n)
                .collect::<Result<_, _>>()?,
            None => {
                let cfg = interp_toy::corpus::CorpusConfig {
                    seed: 2,
                    n_docs: n,
                    ..Default::default()
                };
                interp_toy::corpus::generate(&cfg)
                    .into_iter()
                    .map(|d| d.text)
                    .collect()
            }
        };
        let n_ctx = model.cfg().n_ctx;
        let mut tokens = model.to_tokens_each(&texts, true)?;
        tokens.iter_mut().for_each(|t| t.truncate(n_ctx));
        Ok(tokens)
    }
}

#[cfg(feature = "hub")]
fn release_stack(releases: &[String]) -> Result<interp_flow::SaeStack, Box<dyn Error>> {
    let releases: Vec<&str> = releases.iter().map(String::as_str).collect();
    Ok(interp_flow::SaeStack::from_pretrained(&releases, |id| {
        id.contains("width_16k/canonical")
    })?)
}

#[cfg(not(feature = "hub"))]
fn release_stack(_releases: &[String]) -> Result<interp_flow::SaeStack, Box<dyn Error>> {
    Err("loading SAELens releases needs the hub: add `--features hub`".into())
}

/// The flags that pick an example's model and SAE (flatten into a clap parser).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SubjectArgs {
    /// Model directory or hub id (default: the toy world).
    #[arg(long)]
    pub model: Option<String>,
    /// SAELens release of the SAE (with --model; `hub` feature).
    #[arg(long)]
    pub sae_release: Option<String>,
    /// SAE id in the release, or an SAE directory or file without --sae-release (with --model).
    #[arg(long)]
    pub sae_id: Option<String>,
}

impl SubjectArgs {
    /// [`load_subject`] with these flags; `toy_hook` picks the toy world's SAE.
    ///
    /// # Errors
    /// As [`load_subject`]; `--model` without `--sae-id`.
    pub fn load(&self, toy_hook: &str) -> Result<Subject, Box<dyn Error>> {
        let sae_id = match (&self.model, &self.sae_id) {
            (Some(_), None) => {
                return Err("--model needs --sae-id (and --sae-release for a release)".into())
            }
            (_, id) => id.as_deref().unwrap_or(toy_hook),
        };
        load_subject(
            self.model.as_deref(),
            self.sae_release.as_deref(),
            sae_id,
            toy_hook,
        )
    }
}

/// Loads the toy world's model and its SAE at `toy_hook` when `model` is `None`; otherwise
/// `model` (a directory, or a hub id with the `hub` feature) and the SAE `sae_id` of the
/// SAELens release `release` (`hub` feature), or the SAE directory or file `sae_id` when no
/// release is given.
///
/// # Errors
/// Loading errors; a release or hub id without the `hub` feature.
pub fn load_subject(
    model: Option<&str>,
    release: Option<&str>,
    sae_id: &str,
    toy_hook: &str,
) -> Result<Subject, Box<dyn Error>> {
    let Some(name) = model else {
        let world = interp_toy::ToyWorld::load()?;
        let sae = world.sae(toy_hook)?;
        let dir = world
            .dir()
            .canonicalize()
            .unwrap_or_else(|_| world.dir().to_path_buf());
        let source = format!("toy world {} ({toy_hook})", dir.display());
        return Ok(Subject {
            hook: toy_hook.parse()?,
            model: world.into_model(),
            sae,
            toy: true,
            source,
        });
    };
    let model = HookedTransformer::<Cpu>::from_pretrained(name, &Default::default())?;
    let sae = match release {
        Some(release) => release_sae(release, sae_id)?,
        None => interp_sae::load(Path::new(sae_id))?,
    };
    let hook_name = sae
        .config()
        .metadata
        .hook_name
        .clone()
        .ok_or("the SAE's config names no hook")?;
    Ok(Subject {
        hook: model.cfg().parse_hook(&hook_name)?,
        model,
        sae,
        toy: false,
        source: format!("{name}, SAE {} {sae_id}", release.unwrap_or("")),
    })
}

#[cfg(feature = "hub")]
fn release_sae(release: &str, sae_id: &str) -> Result<Sae, Box<dyn Error>> {
    Ok(interp_sae::registry::from_pretrained(release, sae_id)?)
}

#[cfg(not(feature = "hub"))]
fn release_sae(release: &str, _sae_id: &str) -> Result<Sae, Box<dyn Error>> {
    Err(
        format!("loading the SAELens release `{release}` needs the hub: add `--features hub`")
            .into(),
    )
}
