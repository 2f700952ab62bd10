//! The toy corpus generator and its tokenizer.

use interp_toy::corpus::{
    antonym_words, base_word, document, emotion_prompts, generate, mood_marker, mood_words,
    read_jsonl, topic_words, write_jsonl, Antonym, CorpusConfig, Document, Label, Lang, Mood,
    Topic,
};
use interp_toy::tokenizer::{end_of_text_id, load_tokenizer, save_tokenizer, train_tokenizer};

fn cfg(seed: u64, n_docs: usize) -> CorpusConfig {
    CorpusConfig {
        seed,
        n_docs,
        ..CorpusConfig::default()
    }
}

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Byte offsets of the whole-word occurrences of `word` in `text`.
fn occurrences(text: &str, word: &str) -> Vec<usize> {
    text.match_indices(word)
        .map(|(at, _)| at)
        .filter(|&at| {
            !is_word_char(text[..at].chars().next_back())
                && !is_word_char(text[at + word.len()..].chars().next())
        })
        .collect()
}

fn all_antonym_words(lang: Lang) -> Vec<(&'static str, Antonym, bool)> {
    Antonym::ALL
        .into_iter()
        .flat_map(|d| [true, false].map(|p| (d, p)))
        .flat_map(|(d, p)| antonym_words(d, p, lang).iter().map(move |w| (*w, d, p)))
        .collect()
}

#[test]
fn deterministic_and_seed_dependent() {
    let a = generate(&cfg(7, 300));
    let b = generate(&cfg(7, 300));
    assert_eq!(a, b);
    let c = generate(&cfg(8, 300));
    assert_ne!(a, c);
    assert!(a.iter().zip(&c).filter(|(x, y)| x.text == y.text).count() < 5);
    // Document i does not depend on how many are generated.
    assert_eq!(document(&cfg(7, 1), 123), a[123]);
}

#[test]
fn spans_are_exact_labelled_words_and_complete() {
    for doc in generate(&cfg(1, 3000)) {
        let mut prev_end = 0;
        for s in &doc.spans {
            assert!(s.start >= prev_end && s.start < s.end, "{doc:?}");
            prev_end = s.end;
            let w = doc.span_text(s);
            assert!(!w.is_empty(), "{doc:?}");
            assert!(
                !is_word_char(doc.text[..s.start].chars().next_back()),
                "{w} in {}",
                doc.text
            );
            assert!(
                !is_word_char(doc.text[s.end..].chars().next()),
                "{w} in {}",
                doc.text
            );
            match s.label {
                Label::Mood(m) => {
                    assert_eq!(m, doc.mood);
                    assert!(mood_words(m, doc.lang).contains(&w), "{w}");
                }
                Label::Topic(t) => {
                    assert_eq!(t, doc.topic);
                    assert!(topic_words(t, doc.lang).contains(&w), "{w}");
                }
                Label::Antonym { dim, positive } => {
                    assert!(antonym_words(dim, positive, doc.lang).contains(&w), "{w}");
                }
            }
        }
        // Every whole-word occurrence of a mood or antonym word (of any mood) is labelled.
        let labelled = |at: usize| doc.spans.iter().any(|s| s.start == at);
        for m in Mood::ALL {
            for w in mood_words(m, doc.lang) {
                for at in occurrences(&doc.text, w) {
                    assert!(labelled(at), "unlabelled {w:?} in {}", doc.text);
                }
            }
        }
        for (w, _, _) in all_antonym_words(doc.lang) {
            for at in occurrences(&doc.text, w) {
                assert!(labelled(at), "unlabelled {w:?} in {}", doc.text);
            }
        }
    }
}

#[test]
fn every_doc_has_opener_and_predictable_mention() {
    let docs = generate(&cfg(2, 3000));
    for doc in &docs {
        let first = doc.mood_spans().next().expect("opener mood word");
        let opener_end = doc.text.find('.').expect("a sentence");
        assert!(first.end <= opener_end, "{}", doc.text);
        assert_eq!(doc.mood_onset(), first.end);
        let later: Vec<_> = doc.predictable_mood_spans().collect();
        assert!(!later.is_empty() && later.len() <= 2, "{}", doc.text);
        for s in later {
            assert!(s.start > first.end);
            assert!(mood_words(doc.mood, doc.lang).contains(&doc.span_text(s)));
        }
        // The document ends with a mood mention.
        let last = doc.mood_spans().last().expect("mood spans");
        let tail = &doc.text[last.end..];
        assert!(
            tail.ends_with('.') && tail.matches('.').count() == 1,
            "{}",
            doc.text
        );
        let words = doc.text.split_whitespace().count();
        assert!((18..=70).contains(&words), "{words} words: {}", doc.text);
        assert!(doc.topic_spans().count() >= 1, "{}", doc.text);
    }
}

#[test]
fn mix_of_languages_moods_topics_and_lexicon_coverage() {
    let docs = generate(&cfg(3, 6000));
    let fr = docs.iter().filter(|d| d.lang == Lang::Fr).count() as f64 / docs.len() as f64;
    assert!((fr - 0.25).abs() < 0.025, "{fr}");
    for m in Mood::ALL {
        let n = docs.iter().filter(|d| d.mood == m).count();
        assert!((800..1200).contains(&n), "{m}: {n}");
    }
    for t in Topic::ALL {
        let n = docs.iter().filter(|d| d.topic == t).count();
        assert!((800..1200).contains(&n), "{t}: {n}");
    }
    // Every lexicon word occurs, and antonyms appear with both poles.
    let text_of = |lang| {
        docs.iter()
            .filter(|d| d.lang == lang)
            .map(|d| d.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for lang in Lang::ALL {
        let all = text_of(lang);
        for m in Mood::ALL {
            for w in mood_words(m, lang) {
                assert!(!occurrences(&all, w).is_empty(), "{w}");
            }
        }
        for t in Topic::ALL {
            for w in topic_words(t, lang) {
                assert!(!occurrences(&all, w).is_empty(), "{w}");
            }
        }
        for (w, _, _) in all_antonym_words(lang) {
            assert!(!occurrences(&all, w).is_empty(), "{w}");
        }
    }
    let only_en = generate(&CorpusConfig {
        french_fraction: 0.0,
        ..cfg(3, 200)
    });
    assert!(only_en.iter().all(|d| d.lang == Lang::En));
    let nan = generate(&CorpusConfig {
        french_fraction: f64::NAN,
        ..cfg(3, 50)
    });
    assert!(nan.iter().all(|d| d.lang == Lang::En));
}

#[test]
fn emotion_prompts_contain_base_word_and_are_openers() {
    assert_eq!(base_word(Mood::Happy, Lang::En), "happy");
    assert_eq!(base_word(Mood::Happy, Lang::Fr), "heureux");
    let docs = generate(&cfg(0, 20_000));
    for lang in Lang::ALL {
        for m in Mood::ALL {
            let prompts = emotion_prompts(m, lang);
            for p in &prompts {
                assert_eq!(occurrences(p, base_word(m, lang)).len(), 1, "{p}");
                assert!(
                    docs.iter().any(|d| d.text.starts_with(p.as_str())),
                    "not a generated opener: {p}"
                );
            }
            let mut uniq = prompts.to_vec();
            uniq.dedup();
            assert_eq!(uniq.len(), 5);
        }
    }
    assert_eq!(
        emotion_prompts(Mood::Happy, Lang::En)[0],
        "I'm so happy :) I got the promotion I wanted."
    );
    assert_eq!(
        emotion_prompts(Mood::Happy, Lang::Fr)[0],
        "Je suis heureux :) parce que j'ai eu le travail."
    );
}

#[test]
fn jsonl_round_trip() {
    let docs = generate(&cfg(4, 100));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    write_jsonl(&docs, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), docs.len());
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["text"].as_str(), Some(docs[0].text.as_str()));
    assert_eq!(read_jsonl(&path).unwrap(), docs);
    let missing = read_jsonl(&dir.path().join("missing.jsonl"));
    assert!(matches!(missing, Err(interp_toy::Error::Io { .. })));
}

fn tokens(tok: &tokenizers::Tokenizer, s: &str) -> Vec<String> {
    tok.encode(s, false).unwrap().get_tokens().to_vec()
}

#[test]
fn tokenizer_trains_deterministically_and_round_trips() {
    let docs: Vec<Document> = generate(&cfg(0, 4000));
    let texts = || docs.iter().map(|d| d.text.as_str());
    let tok = train_tokenizer(texts(), 1024).unwrap();
    assert_eq!(tok.get_vocab_size(true), 1024);
    assert_eq!(tok.get_vocab_size(false), 1024);
    assert_eq!(end_of_text_id(&tok), Some(1023));

    assert_eq!(tokens(&tok, " happy"), ["Ġhappy"]);
    let heureux = tokens(&tok, " heureux");
    assert!(heureux.len() >= 2 && heureux[0] != "Ġ", "{heureux:?}");
    for doc in docs.iter().take(200) {
        let enc = tok.encode(doc.text.as_str(), false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), doc.text);
    }
    let eot = tok.encode("<|endoftext|>Je suis heureux", false).unwrap();
    assert_eq!(eot.get_ids()[0], 1023);

    let again = train_tokenizer(texts(), 1024).unwrap();
    assert_eq!(
        tok.to_string(false).unwrap(),
        again.to_string(false).unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    save_tokenizer(&tok, &path).unwrap();
    let loaded = load_tokenizer(&path).unwrap();
    assert_eq!(
        loaded.to_string(false).unwrap(),
        tok.to_string(false).unwrap()
    );

    assert!(train_tokenizer(texts(), 100).is_err());
}

/// The full-size check: `cargo test -p interp-toy --release --test toy -- --ignored corpus::
/// --nocapture`.
#[test]
#[ignore = "20k documents; run by hand"]
fn tokenizer_at_full_scale() {
    let docs = generate(&CorpusConfig::default());
    let tok = train_tokenizer(docs.iter().map(|d| d.text.as_str()), 1024).unwrap();
    for w in [
        " happy", " glad", " sad", " excited", " angry", " calm", " anxious", " heureux",
        " triste", " excité", " furieux", " calme", " anxieux", " big", " grand", " cake",
        " gâteau",
    ] {
        println!("{w:?}: {:?}", tokens(&tok, w));
    }
    let lens: Vec<usize> = docs
        .iter()
        .map(|d| tok.encode(d.text.as_str(), false).unwrap().len())
        .collect();
    let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    let max = lens.iter().max().copied().unwrap_or(0);
    let words: usize = docs.iter().map(|d| d.text.split_whitespace().count()).sum();
    println!(
        "tokens/doc mean {mean:.1} max {max}; words/doc {:.1}",
        words as f64 / docs.len() as f64
    );
    for lang in Lang::ALL {
        let (n, t) = docs
            .iter()
            .zip(&lens)
            .filter(|(d, _)| d.lang == lang)
            .fold((0, 0), |(n, t), (_, l)| (n + 1, t + l));
        println!("{lang}: {:.1} tokens/doc", t as f64 / n as f64);
    }
    for doc in docs.iter().take(3) {
        println!("{}", doc.text);
    }
    assert_eq!(tokens(&tok, " happy").len(), 1);
    // Each mood's emoticon starts with its own token, so predicting it needs the mood.
    let firsts: Vec<String> = Mood::ALL
        .iter()
        .map(|&m| tokens(&tok, &format!(" {}", mood_marker(m)))[0].clone())
        .collect();
    println!("emoticons start with {firsts:?}");
    let mut uniq = firsts.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), Mood::ALL.len(), "{firsts:?}");
    let heureux = tokens(&tok, " heureux");
    assert!(heureux.len() >= 2 && heureux[0] != "Ġ", "{heureux:?}");
    assert!(max < 120, "{max}");
}
