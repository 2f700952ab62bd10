//! The activation store on the tiny GPT-2 fixture: activations equal a direct
//! `run_with_cache` of the same windows, hooks stay aligned, the mixing buffer stays bounded,
//! batches are deterministic and resumable, shards round-trip, bad input is a typed error.
#![cfg(feature = "models")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use interp_models::prelude::*;
use interp_sae::store::{
    token_windows, ActivationStore, Corpus, RowOrigin, ShardReader, StoreConfig, TextUnit,
};
use interp_sae::train::ActivationSource;
use interp_sae::Error;
use ndarray::{Array2, Axis};

fn model() -> Arc<HookedTransformer<Cpu>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interp-models/tests/fixtures/gpt2/tiny-gpt2");
    Arc::new(HookedTransformer::from_dir(&dir, &Default::default()).unwrap())
}

const WORDS: [&str; 16] = [
    "the", "cat", "sat", "on", "a", "mat", "je", "suis", "heureux", "today", "model", "hooks",
    "sparse", "features", "of", "words",
];

/// `n` documents of 1..=24 words, deterministic.
fn documents(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 24;
            (0..len)
                .map(|_| WORDS[next() % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A text corpus of `n` lines.
fn text_corpus(dir: &Path, n: usize) -> Corpus {
    let path = write(dir, "corpus.txt", &(documents(n, 7).join("\n") + "\n"));
    Corpus::open(path).unwrap()
}

fn cfg(hooks: &[&str]) -> StoreConfig {
    let mut c = StoreConfig::new(hooks.iter().copied());
    c.context_size = 16;
    c.windows_per_forward = 3;
    c.buffer_rows = 200;
    c.seed = 11;
    c.progress = false;
    c
}

/// Activation rows at `hook` of `window` run on its own.
fn direct(model: &HookedTransformer<Cpu>, window: &[u32], hook: &str) -> Array2<f32> {
    let (_, cache) = model
        .run_with_cache(&Batch::single(window), NameFilter::patterns([hook]))
        .unwrap();
    let act = cache.get_by_name(hook).unwrap().unwrap();
    let dims = act.dims();
    let d: usize = dims[2..].iter().product();
    let values = act.to_data().into_vec::<f32>().unwrap();
    Array2::from_shape_vec((dims[1], d), values).unwrap()
}

fn windows_of(
    model: &HookedTransformer<Cpu>,
    corpus: &Corpus,
    c: &StoreConfig,
    n: usize,
) -> Vec<Vec<u32>> {
    token_windows(model, corpus, c)
        .unwrap()
        .take(n)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn windows_concatenate_documents_with_bos_like_saelens() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let docs = documents(40, 3);
    let corpus = Corpus::open(write(tmp.path(), "c.txt", &docs.join("\n"))).unwrap();
    let mut c = cfg(&["blocks.0.hook_resid_pre"]);
    c.cycle = false;
    let got: Vec<Vec<u32>> = token_windows(&model, &corpus, &c)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Reference: the documents joined by BOS into one stream; each window is BOS and the next
    // 15 tokens of the stream, a separator that would open a window dropped.
    let mut stream = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            stream.push(0u32);
        }
        stream.extend(model.to_tokens(d, false).unwrap());
    }
    let mut want = Vec::new();
    let mut at = 0;
    loop {
        if stream.get(at) == Some(&0) {
            at += 1;
        }
        if at + 15 > stream.len() {
            break;
        }
        let mut w = vec![0u32];
        w.extend_from_slice(&stream[at..at + 15]);
        want.push(w);
        at += 15;
    }
    assert!(want.len() > 10);
    assert_eq!(got, want);
}

#[test]
fn store_rows_equal_a_direct_run_of_their_window() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let corpus = text_corpus(tmp.path(), 60);
    let hooks = [
        "blocks.0.hook_resid_post",
        "blocks.1.attn.hook_z",
        "blocks.0.mlp.hook_post",
    ];
    for per_forward in [1, 3] {
        let mut c = cfg(&hooks);
        c.windows_per_forward = per_forward;
        let mut store =
            ActivationStore::new(Arc::clone(&model), corpus.clone(), c.clone()).unwrap();
        assert_eq!(store.dims(), [32, 32, 128]);
        let (batches, origins) = store.next_batches_with_origin(300).unwrap();
        let windows = windows_of(&model, &corpus, &c, store.windows_read() as usize);
        let mut max_diff = 0f32;
        for (h, hook) in hooks.iter().enumerate() {
            let mut cache = BTreeMap::new();
            for (i, o) in origins.iter().enumerate() {
                assert!(o.position > 0, "the BOS position is excluded by default");
                let rows = cache
                    .entry(o.window)
                    .or_insert_with(|| direct(&model, &windows[o.window as usize], hook));
                let want = rows.row(o.position);
                let got = batches[h].row(i);
                // Not bit-exact: caching some hooks moves the forward off the fused kernels.
                let diff = got
                    .iter()
                    .zip(want)
                    .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
                assert!(diff <= 1e-5, "{hook} row {i} ({o:?}) differs by {diff}");
                max_diff = max_diff.max(diff);
            }
        }
        assert!(max_diff <= 1e-5, "batched forward differs by {max_diff}");
        // Rows are mixed: consecutive rows rarely come from one window.
        let same = origins
            .windows(2)
            .filter(|p| p[0].window == p[1].window)
            .count();
        assert!(
            same < origins.len() / 4,
            "{same} of {} consecutive pairs share a window",
            origins.len()
        );
    }
}

#[test]
fn hooks_of_one_pass_stay_aligned() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = text_corpus(tmp.path(), 60);
    let hooks = [
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_attn_out",
        "blocks.1.hook_mlp_out",
        "blocks.1.hook_resid_post",
    ];
    let mut store = ActivationStore::new(model(), corpus, cfg(&hooks)).unwrap();
    for _ in 0..4 {
        let b = store.next_batches(97).unwrap();
        assert!(b.iter().all(|x| x.dim() == (97, 32)));
        // resid_post = resid_pre + attn_out + mlp_out, token by token.
        let sum = &b[0] + &b[1] + &b[2];
        let err = (&sum - &b[3]).mapv(f32::abs).fold(0f32, |a, &v| a.max(v));
        assert!(err < 1e-5, "rows misaligned across hooks: {err}");
    }
}

#[test]
fn mixing_buffer_stays_within_capacity() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = text_corpus(tmp.path(), 3);
    let mut c = cfg(&["blocks.0.hook_resid_pre"]);
    c.buffer_rows = 64; // four windows of 15 rows
    let mut store = ActivationStore::new(model(), corpus, c).unwrap();
    for n in [1, 5, 31, 64, 100, 7] {
        store.next_batches(n).unwrap();
        assert!(store.buffered_rows() <= 64);
    }
    assert!(store.peak_buffered_rows() <= 64);
    assert!(
        store.peak_buffered_rows() >= 60,
        "{}",
        store.peak_buffered_rows()
    );
    assert_eq!(store.rows_out(), 208);
    // The tiny corpus is read more than once (cycle is on by default).
    assert!(store.passes() >= 1, "{:?}", store);
}

#[test]
fn same_seed_same_batches_and_seek_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let corpus = text_corpus(tmp.path(), 10);
    let c = cfg(&["blocks.1.hook_resid_pre", "blocks.0.attn.hook_z"]);
    let new = || ActivationStore::new(Arc::clone(&model), corpus.clone(), c.clone()).unwrap();
    let (mut a, mut b) = (new(), new());
    let mut saved = Vec::new();
    let mut after = Vec::new();
    for (i, n) in [50, 73, 1, 128, 300, 64].into_iter().enumerate() {
        saved.push(a.position());
        let x = a.next_batches(n).unwrap();
        assert_eq!(x, b.next_batches(n).unwrap(), "batch {i}");
        after.push(x);
    }
    assert!(a.passes() >= 1, "the replay crosses the end of the corpus");
    let mut other = c.clone();
    other.seed += 1;
    let mut d = ActivationStore::new(Arc::clone(&model), corpus.clone(), other).unwrap();
    assert_ne!(d.next_batches(50).unwrap(), after[0]);

    // A fresh store sought to each saved position continues exactly; so does one sought back.
    for (k, pos) in saved.iter().enumerate().skip(1) {
        let mut r = new();
        r.seek(pos).unwrap();
        assert_eq!(&r.position(), pos);
        for (j, want) in after.iter().enumerate().skip(k) {
            assert_eq!(
                &r.next_batches(want[0].nrows()).unwrap(),
                want,
                "seek {k}, batch {j}"
            );
        }
    }
    a.seek(&saved[2]).unwrap();
    assert_eq!(a.next_batches(1).unwrap(), after[2]);
    // Replaying runs the model only on what is still buffered, not on everything read.
    let mut r = new();
    r.seek(&saved[5]).unwrap();
    assert!(r.tokens_processed() > 0);
    assert!(r.tokens_processed() < 16 * r.windows_read());
    // Over a long run the replay re-runs a small, bounded part of what was read.
    let small = StoreConfig {
        buffer_rows: 60,
        ..c.clone()
    };
    let mut long = ActivationStore::new(Arc::clone(&model), corpus.clone(), small.clone()).unwrap();
    long.next_batches(3000).unwrap();
    let (pos, read) = (long.position(), 16 * long.windows_read());
    let next = long.next_batches(64).unwrap();
    let mut r = ActivationStore::new(Arc::clone(&model), corpus.clone(), small).unwrap();
    r.seek(&pos).unwrap();
    assert_eq!(r.next_batches(64).unwrap(), next);
    assert!(
        r.tokens_processed() * 10 < read,
        "{} of {read}",
        r.tokens_processed()
    );

    // Positions of another kind, or that this corpus does not lead to, are typed errors.
    assert!(matches!(
        r.seek(&serde_json::json!({"epoch": 0})),
        Err(Error::Data { .. })
    ));
    let mut bad = saved[3].clone();
    bad["windows"] = serde_json::json!(999);
    assert!(matches!(r.seek(&bad), Err(Error::Data { .. })));
}

#[test]
fn single_hook_store_is_an_activation_source() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let corpus = text_corpus(tmp.path(), 30);
    let c = cfg(&["blocks.1.hook_resid_pre"]);
    let mut s = ActivationStore::new(Arc::clone(&model), corpus.clone(), c.clone()).unwrap();
    let mut twin = ActivationStore::new(Arc::clone(&model), corpus.clone(), c).unwrap();
    let src: &mut dyn ActivationSource = &mut s;
    assert_eq!(src.d_in(), 32);
    let mut batch = Array2::zeros((40, 32));
    src.next_batch(batch.view_mut()).unwrap();
    let pos = src.position();
    src.next_batch(batch.view_mut()).unwrap();
    assert_eq!(twin.next_batches(40).unwrap()[0].nrows(), 40);
    assert_eq!(twin.next_batches(40).unwrap()[0], batch);
    twin.seek(&pos).unwrap();
    assert_eq!(twin.next_batches(40).unwrap()[0], batch);
    assert!(matches!(
        src.next_batch(Array2::zeros((4, 31)).view_mut()),
        Err(Error::InputWidth {
            expected: 32,
            actual: 31
        })
    ));
    let mut multi = ActivationStore::new(
        model,
        corpus,
        cfg(&["blocks.1.hook_resid_pre", "blocks.0.hook_resid_pre"]),
    )
    .unwrap();
    assert!(matches!(
        ActivationSource::next_batch(&mut multi, batch.view_mut()),
        Err(Error::TrainConfig { .. })
    ));
}

fn sorted_rows(rows: &Array2<f32>) -> Vec<Vec<u32>> {
    let mut v: Vec<Vec<u32>> = rows
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect();
    v.sort();
    v
}

#[test]
fn shards_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let corpus = text_corpus(tmp.path(), 40);
    let hooks = ["blocks.0.hook_resid_pre", "blocks.1.mlp.hook_pre"];
    let mut c = cfg(&hooks);
    c.model_name = Some("tiny-gpt2".into());
    let mut store = ActivationStore::new(Arc::clone(&model), corpus.clone(), c.clone()).unwrap();
    let dir = tmp.path().join("shards");
    let manifest = store.write_shards(&dir, 250, 37).unwrap();
    assert_eq!(manifest.n_rows, 250);
    assert_eq!(manifest.shards.len(), 7);
    assert_eq!(manifest.shards.last().unwrap().rows, 250 - 6 * 37);
    assert_eq!(manifest.hooks[1].name, "blocks.1.mlp.hook_pre");
    assert_eq!(manifest.hooks[1].d, 128);
    assert_eq!(manifest.model_name.as_deref(), Some("tiny-gpt2"));
    assert!(manifest.n_tokens >= 250);

    // What was written is what a twin store hands out.
    let mut twin = ActivationStore::new(model, corpus, c).unwrap();
    let written = twin.next_batches(250).unwrap();
    let joint =
        |b: &[Array2<f32>]| ndarray::concatenate(Axis(1), &[b[0].view(), b[1].view()]).unwrap();
    let want = sorted_rows(&joint(&written));

    let mut reader = ShardReader::open(&dir, 5).unwrap().with_shards_in_memory(2);
    assert_eq!(reader.manifest(), &manifest);
    let epoch1 = reader.next_batches(250).unwrap();
    assert_eq!(
        sorted_rows(&joint(&epoch1)),
        want,
        "one epoch reads every row once"
    );
    let pos = ActivationSource::position(&reader);
    let epoch2 = reader.next_batches(250).unwrap();
    assert_eq!(sorted_rows(&joint(&epoch2)), want);
    assert_ne!(epoch1, epoch2, "each epoch has its own order");

    // Deterministic, and resumable from a saved position.
    let mut again = ShardReader::open(&dir, 5).unwrap().with_shards_in_memory(2);
    assert_eq!(again.next_batches(250).unwrap(), epoch1);
    let mut resumed = ShardReader::open(&dir, 5).unwrap().with_shards_in_memory(2);
    resumed.seek(&pos).unwrap();
    assert_eq!(resumed.next_batches(250).unwrap(), epoch2);
    let mut mid = ShardReader::open(&dir, 5).unwrap().with_shards_in_memory(2);
    mid.next_batches(100).unwrap();
    let p = ActivationSource::position(&mid);
    let rest = mid.next_batches(50).unwrap();
    let mut r = ShardReader::open(&dir, 5).unwrap().with_shards_in_memory(2);
    r.seek(&p).unwrap();
    assert_eq!(r.next_batches(50).unwrap(), rest);

    // One hook as an ActivationSource.
    let mut single = ShardReader::open(&dir, 5)
        .unwrap()
        .with_shards_in_memory(2)
        .with_hooks(&["blocks.1.mlp.hook_pre"])
        .unwrap();
    assert_eq!(single.d_in(), 128);
    let mut batch = Array2::zeros((250, 128));
    single.next_batch(batch.view_mut()).unwrap();
    assert_eq!(batch, epoch1[1]);
    assert!(matches!(
        ShardReader::open(&dir, 5)
            .unwrap()
            .with_hooks(&["blocks.0.hook_resid_post"]),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        reader.next_batch(batch.view_mut()),
        Err(Error::TrainConfig { .. })
    ));

    // A directory without a manifest (e.g. a write that died) is an error, not an empty source.
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    assert!(matches!(ShardReader::open(&dir, 5), Err(Error::Io { .. })));
}

#[test]
fn jsonl_paragraphs_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "a/1.jsonl",
        "{\"body\": \"the cat\", \"id\": 1}\n\n{\"body\": \"\"}\n{\"body\": \"sat on\"}\n",
    );
    write(d, "a/b/2.txt", "je suis\nheureux\n\n  \ntoday\n");
    write(d, "a/notes.md", "ignored");
    let corpus = Corpus::open(d.join("a")).unwrap().with_text_field("body");
    assert_eq!(corpus.files().len(), 2);
    let docs: Vec<String> = corpus.documents().collect::<Result<_, _>>().unwrap();
    assert_eq!(docs, ["the cat", "sat on", "je suis", "heureux", "today"]);
    let paragraphs: Vec<String> = corpus
        .clone()
        .with_text_unit(TextUnit::Paragraph)
        .documents()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        paragraphs,
        ["the cat", "sat on", "je suis\nheureux", "today"]
    );

    // Default field "text": a line without it is an error naming file and line.
    let err = Corpus::open(d.join("a/1.jsonl"))
        .unwrap()
        .documents()
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Data { reason } if reason.contains("1.jsonl:1") && reason.contains("`text`")),
        "{err}"
    );
}

#[test]
fn bad_corpora_and_hooks_are_typed_errors_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = model();
    let store =
        |corpus: Corpus, c: StoreConfig| ActivationStore::new(Arc::clone(&model), corpus, c);
    let c = cfg(&["blocks.0.hook_resid_pre"]);

    // Empty corpora.
    let empty = Corpus::open(write(d, "empty.txt", "")).unwrap();
    assert!(matches!(store(empty, c.clone()), Err(Error::Data { .. })));
    let blank = Corpus::open(write(d, "blank.txt", "\n  \n\t\n")).unwrap();
    assert!(matches!(store(blank, c.clone()), Err(Error::Data { .. })));
    std::fs::create_dir(d.join("nothing")).unwrap();
    assert!(matches!(
        Corpus::open(d.join("nothing")),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Corpus::from_files(vec![]),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Corpus::open(d.join("missing.txt")),
        Err(Error::Io { .. })
    ));
    // Shorter than one window without cycling.
    let short = Corpus::open(write(d, "short.txt", "the cat\n")).unwrap();
    let mut once = c.clone();
    once.cycle = false;
    assert!(matches!(
        store(short.clone(), once.clone()),
        Err(Error::Data { .. })
    ));
    assert!(
        store(short, c.clone()).is_ok(),
        "cycling repeats a short corpus"
    );

    // A malformed JSONL line, with its line number.
    let bad = write(
        d,
        "bad.jsonl",
        "{\"text\": \"the cat\"}\n\n{\"text\": oops}\n",
    );
    let err = store(Corpus::open(&bad).unwrap(), c.clone()).unwrap_err();
    assert!(
        matches!(&err, Error::Data { reason } if reason.contains("bad.jsonl:3")),
        "{err}"
    );
    // Found later, mid-run: the store keeps failing rather than starting the corpus over.
    let mut lines: Vec<String> = documents(20, 5)
        .iter()
        .map(|d| serde_json::json!({ "text": d }).to_string())
        .collect();
    lines.push("{\"text\": \"unterminated".into());
    let late = write(d, "late.jsonl", &lines.join("\n"));
    let mut s = store(Corpus::open(&late).unwrap(), c.clone()).unwrap();
    let err = loop {
        if let Err(e) = s.next_batches(50) {
            break e;
        }
    };
    assert!(
        matches!(&err, Error::Data { reason } if reason.contains("late.jsonl:21")),
        "{err}"
    );
    let again = s.next_batches(10).unwrap_err();
    assert!(
        matches!(&again, Error::Data { reason } if reason.contains("late.jsonl:21")),
        "{again}"
    );
    let not_string = write(d, "n.jsonl", "{\"text\": 3}\n");
    assert!(matches!(
        store(Corpus::open(&not_string).unwrap(), c.clone()),
        Err(Error::Data { .. })
    ));

    let corpus = text_corpus(d, 20);
    // Hooks the model does not have.
    for hook in ["blocks.2.hook_resid_pre", "blocks.0.hook_resid", "embed"] {
        let err = store(corpus.clone(), cfg(&[hook])).unwrap_err();
        assert!(matches!(err, Error::Model(_)), "{hook}: {err}");
    }
    assert!(matches!(
        store(corpus.clone(), cfg(&["blocks.0.attn.hook_pattern"])),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        store(
            corpus.clone(),
            cfg(&["blocks.0.hook_resid_pre", "blocks.0.hook_resid_pre"])
        ),
        Err(Error::TrainConfig { .. })
    ));
    assert!(matches!(
        store(corpus.clone(), cfg(&[])),
        Err(Error::TrainConfig { .. })
    ));
    // Impossible sizes.
    for bad in [
        StoreConfig {
            buffer_rows: 29,
            ..c.clone()
        },
        StoreConfig {
            context_size: 65,
            ..c.clone()
        },
        StoreConfig {
            context_size: 1,
            ..c.clone()
        },
        StoreConfig {
            windows_per_forward: 0,
            ..c.clone()
        },
    ] {
        assert!(matches!(
            store(corpus.clone(), bad),
            Err(Error::TrainConfig { .. })
        ));
    }

    // Without cycling the store runs dry with a typed error once everything is handed out.
    let mut s = store(corpus, once).unwrap();
    let mut total = 0;
    let err = loop {
        match s.next_batches(50) {
            Ok(_) => total += 50,
            Err(e) => break e,
        }
    };
    assert!(total > 0);
    assert!(matches!(err, Error::Data { .. }), "{err}");
}

#[test]
fn origins_name_windows_and_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = text_corpus(tmp.path(), 30);
    let mut c = cfg(&["hook_embed"]);
    c.exclude_bos = false;
    c.exclude_tokens = vec![221];
    c.progress = true; // draws nothing when stderr is not a terminal
    let model = model();
    let mut store = ActivationStore::new(Arc::clone(&model), corpus.clone(), c.clone()).unwrap();
    let (b, origins) = store.next_batches_with_origin(200).unwrap();
    let windows = windows_of(&model, &corpus, &c, store.windows_read() as usize);
    let w_e = model
        .weights()
        .w_e
        .val()
        .into_data()
        .into_vec::<f32>()
        .unwrap();
    let mut saw_bos = false;
    for (i, RowOrigin { window, position }) in origins.iter().enumerate() {
        let token = windows[*window as usize][*position];
        assert_ne!(token, 221, "excluded token");
        saw_bos |= token == 0;
        let want = &w_e[token as usize * 32..token as usize * 32 + 32];
        assert_eq!(
            b[0].row(i).to_vec(),
            want,
            "hook_embed is the token's embedding row"
        );
    }
    assert!(saw_bos, "BOS kept when exclude_bos is off");
}
