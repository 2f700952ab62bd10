//! Builds the toy world from scratch with the recorded seeds: corpus → tokenizer → tiny GPT-2
//! (burn autodiff, CPU) → one TopK SAE per hook point, then measures the quality gates on
//! held-out documents and writes everything to `assets/toy/`.
//!
//! `cargo run --release --example build_toy_world [-- --out DIR] [--work DIR] [--lm-steps N]
//! [--sae-steps N] [--keep-model] [--gates-only]`
//!
//! `--keep-model` reuses the model already in `DIR/model` and retrains only the SAEs;
//! `--gates-only` retrains nothing and measures the gates of the world in `DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn_autodiff::Autodiff;
use interp::models::models::gpt2::save_pretrained;
use interp::models::{Cpu, HookPoint, HookedTransformer, TextTokenizer};
use interp::sae::splice::{splice_metrics_sae, SpliceMetrics, SpliceOptions};
use interp::toy::corpus::{self, CorpusConfig, Lang, Mood};
use interp::toy::eval::{mood_feature_auroc, mood_persistence, word_activations};
use interp::toy::lm::{self, LmConfig};
use interp::toy::saes::{self, ToySaeConfig};
use interp::toy::tokenizer::train_tokenizer;
use interp::toy::world::{MODEL_DIR, SAES_DIR};
use serde_json::{json, Value};

/// Every seed and size of the shipped world.
const TRAIN_SEED: u64 = 1;
const HELDOUT_SEED: u64 = 2;
const TRAIN_DOCS: usize = 40_000;
const HELDOUT_DOCS: usize = 600;
const VOCAB: usize = 1024;
/// Held-out documents in the CE-loss-recovered gate.
const CE_DOCS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let out = flag("--out").map_or_else(|| PathBuf::from("assets/toy"), PathBuf::from);
    let work = flag("--work").map_or_else(|| PathBuf::from("target/toy-build"), PathBuf::from);
    let gates_only = args.iter().any(|a| a == "--gates-only");
    let keep_model = gates_only || args.iter().any(|a| a == "--keep-model");
    let mut lm_cfg = LmConfig::default();
    if let Some(s) = flag("--lm-steps") {
        lm_cfg.steps = s.parse()?;
    }
    let mut sae_cfg = ToySaeConfig::default();
    if let Some(s) = flag("--sae-steps") {
        sae_cfg.steps = s.parse()?;
    }
    std::fs::create_dir_all(&work)?;
    let t0 = Instant::now();
    // Seconds per stage; the stages this run skips keep the figures of the previous build.
    let mut seconds = std::fs::read_to_string(out.join("world.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|w| w.get("seconds").cloned())
        .unwrap_or_else(|| json!({}));

    // 1. The corpus: labelled English and French documents.
    let train_docs = corpus::generate(&CorpusConfig {
        seed: TRAIN_SEED,
        n_docs: TRAIN_DOCS,
        ..CorpusConfig::default()
    });
    let heldout = corpus::generate(&CorpusConfig {
        seed: HELDOUT_SEED,
        n_docs: HELDOUT_DOCS,
        ..CorpusConfig::default()
    });
    let corpus_path = work.join("train.jsonl");
    corpus::write_jsonl(&train_docs, &corpus_path)?;
    println!(
        "corpus: {} training documents, {} held out",
        train_docs.len(),
        heldout.len()
    );

    // 2 + 3. Tokenizer and model.
    let model_dir = out.join(MODEL_DIR);
    let model = if keep_model {
        HookedTransformer::<Cpu>::from_dir(&model_dir, &Default::default())?
    } else {
        let tokenizer = TextTokenizer::new(train_tokenizer(
            train_docs.iter().map(|d| d.text.as_str()),
            VOCAB,
        )?);
        let eot = tokenizer
            .token_to_id(interp::toy::tokenizer::END_OF_TEXT)
            .ok_or("no <|endoftext|>")?;
        let stream = lm::pack(train_docs.iter().map(|d| d.text.as_str()), &tokenizer, eot)?;
        println!(
            "tokenizer: {} tokens; training stream {} tokens; model {} layers × d_model {}",
            tokenizer.vocab_size(),
            stream.len(),
            lm_cfg.n_layers,
            lm_cfg.d_model
        );
        let (model, report) = lm::train::<Autodiff<Cpu>>(
            &lm_cfg,
            tokenizer,
            &stream,
            &Default::default(),
            100,
            |p| {
                println!(
                    "  step {:5}  loss {:.4}  lr {:.2e}",
                    p.step, p.train_loss, p.lr
                )
            },
        )?;
        println!("model trained in {:.0} s", report.seconds);
        seconds["lm"] = json!(report.seconds);
        save_pretrained(&model, &model_dir)?;
        std::fs::write(
            work.join("lm_report.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        model
    };

    // Gate: held-out loss and mood persistence.
    let tokenizer = model.tokenizer()?;
    let eot = model.cfg().eos_token_id.ok_or("model has no eos token")?;
    let heldout_stream = lm::pack(heldout.iter().map(|d| d.text.as_str()), tokenizer, eot)?;
    let heldout_loss = lm::eval_loss(&model, &heldout_stream, 200, 8)?;
    let persistence = mood_persistence(&model, &heldout)?;
    println!("held-out loss {heldout_loss:.4} nats/token");
    for lang in Lang::ALL {
        println!(
            "mood persistence ({lang}): {:.1}% of {} cases",
            100.0 * persistence.accuracy(lang),
            persistence.per_lang.get(&lang).map_or(0, |c| c.1)
        );
    }

    let t_saes = Instant::now();
    // 4. SAEs at every hook point, from one pass over the corpus (or the shipped ones).
    let model = Arc::new(model);
    let hooks = saes::toy_hooks(model.cfg().n_layers);
    // blocks.{l}.hook_resid_pre has the activations of blocks.{l-1}.hook_resid_post: one SAE,
    // trained and measured once, saved and reported under both names.
    let distinct: Vec<HookPoint> = hooks
        .iter()
        .copied()
        .filter(|h| saes::same_activations_as(*h).is_none())
        .collect();
    let saes_dir = out.join(SAES_DIR);
    let mut trained = Vec::new();
    if gates_only {
        for hook in &hooks {
            let dir = saes_dir.join(hook.to_string());
            let density = interp::sae::formats::saelens::load_sparsity(&dir)?;
            trained.push((*hook, interp::sae::formats::saelens::load(&dir)?, density));
        }
    } else {
        let acts = saes::collect_activations(model.clone(), &corpus_path, &distinct, &sae_cfg)?;
        let mut acts: BTreeMap<HookPoint, _> = distinct.iter().copied().zip(acts).collect();
        for hook in &hooks {
            let dir = saes_dir.join(hook.to_string());
            let twin = saes::same_activations_as(*hook)
                .and_then(|h| trained.iter().find(|(t, _, _)| *t == h).cloned());
            let (sae, density) = match (twin, acts.remove(hook)) {
                (Some((twin, mut sae, density)), _) => {
                    sae.set_hook_name(&hook.to_string());
                    println!("  {hook:28} same activations as {twin}: same SAE");
                    (sae, density)
                }
                (None, Some(x)) => {
                    let work_dir = work.join("saes").join(hook.to_string());
                    let t = saes::train_sae(x, *hook, &sae_cfg, &work_dir, false)?;
                    println!(
                        "  {hook:28} L0 {:5.1}  train FVU {:.4}",
                        t.last.l0, t.last.fvu
                    );
                    (t.sae, t.log10_density)
                }
                (None, None) => return Err(format!("no activations for {hook}").into()),
            };
            interp::sae::formats::saelens::save(&sae, &dir, density.as_deref())?;
            trained.push((*hook, sae, density));
        }
    }

    if !gates_only {
        seconds["saes"] = json!(t_saes.elapsed().as_secs_f64());
    }

    // Gates: held-out FVU, dead latents, CE loss recovered, and the best single feature per mood.
    let t_gates = Instant::now();
    let heldout_path = work.join("heldout.jsonl");
    corpus::write_jsonl(&heldout, &heldout_path)?;
    let eval_cfg = ToySaeConfig {
        tokens: 16_384,
        ..sae_cfg.clone()
    };
    let heldout_acts =
        saes::collect_activations(model.clone(), &heldout_path, &distinct, &eval_cfg)?;
    let words = word_activations(model.as_ref(), &heldout, &distinct)?;
    let measured: Vec<_> = trained
        .iter()
        .filter(|(h, _, _)| distinct.contains(h))
        .collect();
    let pairs: Vec<_> = measured.iter().map(|(h, sae, _)| (*h, sae)).collect();
    let aurocs = mood_feature_auroc(&words, &pairs, 16)?;
    let windows = heldout
        .iter()
        .take(CE_DOCS)
        .map(|d| {
            let mut ids = model.to_tokens(&d.text, true)?;
            ids.truncate(model.cfg().n_ctx);
            Ok(ids)
        })
        .collect::<Result<Vec<_>, interp::models::Error>>()?;
    let splice_opts = SpliceOptions::ignoring_special_tokens(model.as_ref());
    let mut gates = BTreeMap::new();
    for ((hook, sae, density), x) in measured.iter().zip(&heldout_acts) {
        let fvu = interp::sae::train::fvu(sae, x.view())?;
        let l0 = saes::mean_l0(sae, x)?;
        let dead = density.as_deref().map_or(f64::NAN, saes::dead_fraction);
        let splice = splice_metrics_sae(model.as_ref(), sae, &windows, &splice_opts)?;
        gates.insert(*hook, (fvu, l0, dead, splice));
    }
    let mut sae_rows = Vec::new();
    println!(
        "\n{:28} {:>7} {:>6} {:>7} {:>6}  best-feature AUROC per mood",
        "hook", "FVU", "L0", "dead%", "CE rec"
    );
    for hook in &hooks {
        let source = saes::same_activations_as(*hook).unwrap_or(*hook);
        let (fvu, l0, dead, splice) = &gates[&source];
        // Splicing at the twin hook is the same operation: report it under this hook's name.
        let splice = SpliceMetrics {
            hook: hook.to_string(),
            ..splice.clone()
        };
        let ce_recovered = splice.ce_loss_recovered.unwrap_or(f64::NAN);
        let per_mood = &aurocs[&source];
        let cells: Vec<String> = per_mood
            .iter()
            .map(|m| format!("{} f{} {:.3}", m.mood, m.feature, m.auroc))
            .collect();
        println!(
            "{:28} {fvu:7.4} {l0:6.1} {:7.2} {ce_recovered:6.3}  {}",
            hook.to_string(),
            100.0 * dead,
            cells.join(" | ")
        );
        sae_rows.push(json!({
            "hook": hook.to_string(), "heldout_fvu": fvu, "heldout_l0": l0,
            "dead_fraction": dead, "splice": splice, "moods": per_mood,
        }));
    }
    println!("\nbest AUROC per mood over all SAEs:");
    for mood in Mood::ALL {
        let best = aurocs
            .iter()
            .flat_map(|(h, v)| v.iter().filter(|m| m.mood == mood).map(move |m| (h, m)))
            .max_by(|a, b| a.1.auroc.total_cmp(&b.1.auroc));
        if let Some((hook, m)) = best {
            println!("  {mood:8} {:.3}  ({hook}, feature {})", m.auroc, m.feature);
        }
    }

    seconds["gates"] = json!(t_gates.elapsed().as_secs_f64());
    let world = json!({
        "seeds": {"train_corpus": TRAIN_SEED, "heldout_corpus": HELDOUT_SEED},
        "corpus": {"train_docs": TRAIN_DOCS, "heldout_docs": HELDOUT_DOCS},
        "vocab_size": VOCAB,
        "lm": lm_cfg,
        "sae": sae_cfg,
        "gates": {
            "heldout_loss": heldout_loss,
            "mood_persistence": persistence,
            "saes": sae_rows,
        },
        "seconds": seconds,
    });
    std::fs::write(
        out.join("world.json"),
        serde_json::to_string_pretty(&world)?,
    )?;
    println!(
        "\nwrote {} in {:.0} s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
