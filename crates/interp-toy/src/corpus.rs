//! A deterministic, seeded generator of short English and French documents.
//!
//! Every document has one **mood** (stated by the opener with a mood word and mentioned again
//! later, so a model can carry it forward), one **topic** (its sentences use that topic's
//! nouns and verbs) and some **antonym** adjectives ("The cake was big and hot."). Every
//! labelled word is emitted with its byte span in the text, so analyses can be scored against
//! known answers.
//!
//! Document `i` of seed `s` depends only on `(s, i)` and the French fraction
//! ([`SplitMix64::stream`]`(s, i)`), not on how many documents are generated: a held-out set is
//! just another seed.
//!
//! Structure of a document (4–8 sentences, 22–60 words in English, 22–46 in French, so that
//! with the 1024-token [`crate::tokenizer`] a document stays under about 115 tokens):
//! 1. an opener that states the mood with a mood word, which like every mood word is followed
//!    by its mood's emoticon ([`mood_marker`]: "I'm so happy :) I got the promotion I wanted.",
//!    "Je suis heureux :) parce que j'ai eu le travail.");
//! 2. two or three topic sentences, some with antonym adjectives or "a success" / "a failure";
//! 3. one or two mood-consistent sentences without mood words ("I cry all night.");
//! 4. one or two later mood-word mentions ("I am still sad :(.", "Je suis toujours triste :(."),
//!    the last one ending the document. Their word is drawn from the same mood's list, so it is
//!    predictable (as a mood) from the opener: see [`Document::predictable_mood_spans`].
//!
//! Topic and mood-consistent sentences are shuffled together; a second later mention sits at a
//! random point among them. A document over its language's word budget drops its third, then
//! second topic sentence, then its second mood-consistent sentence, then its second mention.
//!
//! Every choice is uniform from the seeded generator; language, mood and topic are drawn
//! independently per document.

use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use interp_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The language of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

impl Lang {
    /// Every language, in declaration order.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The snake_case name (`"en"`, `"fr"`), as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }
}

/// The mood of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    /// Happy (EN happy, glad, joyful, cheerful; FR heureux, joyeux, content, ravi, enchanté,
    /// comblé).
    Happy,
    /// Sad (EN sad, unhappy, gloomy, miserable; FR triste, malheureux, abattu, déprimé).
    Sad,
    /// Excited (EN excited, thrilled, eager; FR excité, enthousiaste).
    Excited,
    /// Angry (EN angry, furious, mad; FR furieux, fâché).
    Angry,
    /// Calm (EN calm, relaxed, peaceful; FR calme, détendu, paisible).
    Calm,
    /// Anxious (EN anxious, nervous, worried; FR anxieux, nerveux, inquiet).
    Anxious,
}

impl Mood {
    /// Every mood, in declaration order.
    pub const ALL: [Mood; 6] = [
        Mood::Happy,
        Mood::Sad,
        Mood::Excited,
        Mood::Angry,
        Mood::Calm,
        Mood::Anxious,
    ];

    /// The snake_case name (`"happy"`, …), as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Mood::Happy => "happy",
            Mood::Sad => "sad",
            Mood::Excited => "excited",
            Mood::Angry => "angry",
            Mood::Calm => "calm",
            Mood::Anxious => "anxious",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The topic of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Experiments, labs, physics.
    Science,
    /// Brides, rings, ceremonies.
    Weddings,
    /// Churches, prayer, faith.
    Religion,
    /// Dresses, designers, style.
    Fashion,
    /// Cooking, recipes, restaurants.
    Food,
    /// Teams, matches, stadiums.
    Sports,
}

impl Topic {
    /// Every topic, in declaration order.
    pub const ALL: [Topic; 6] = [
        Topic::Science,
        Topic::Weddings,
        Topic::Religion,
        Topic::Fashion,
        Topic::Food,
        Topic::Sports,
    ];

    /// The snake_case name (`"science"`, …), as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Science => "science",
            Topic::Weddings => "weddings",
            Topic::Religion => "religion",
            Topic::Fashion => "fashion",
            Topic::Food => "food",
            Topic::Sports => "sports",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An antonym dimension; with a pole (`positive: bool`) it names one adjective: the positive
/// pole is big, bright, fast, success, hot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Antonym {
    /// big / small (FR grand / petit).
    Size,
    /// bright / dark (FR lumineux / sombre).
    Brightness,
    /// fast / slow (FR rapide / lent).
    Speed,
    /// success / failure, as nouns: "was a success" (FR succès / échec).
    Outcome,
    /// hot / cold (FR chaud / froid).
    Temperature,
}

impl Antonym {
    /// Every dimension, in declaration order.
    pub const ALL: [Antonym; 5] = [
        Antonym::Size,
        Antonym::Brightness,
        Antonym::Speed,
        Antonym::Outcome,
        Antonym::Temperature,
    ];

    /// The snake_case name (`"size"`, …), as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Antonym::Size => "size",
            Antonym::Brightness => "brightness",
            Antonym::Speed => "speed",
            Antonym::Outcome => "outcome",
            Antonym::Temperature => "temperature",
        }
    }

    /// The English word of a pole: `Size.pole(true) == "big"`, `Size.pole(false) == "small"`.
    pub fn pole(self, positive: bool) -> &'static str {
        antonym_words(self, positive, Lang::En)[0]
    }

    /// The dimensions used as adjectives (all but [`Antonym::Outcome`], a noun).
    const ADJECTIVES: [Antonym; 4] = [
        Antonym::Size,
        Antonym::Brightness,
        Antonym::Speed,
        Antonym::Temperature,
    ];
}

macro_rules! display_by_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}
display_by_name!(Lang, Mood, Topic, Antonym);

/// What a span of text is labelled with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A mood word (always of the document's mood).
    Mood(Mood),
    /// A topic noun or verb (always of the document's topic).
    Topic(Topic),
    /// An antonym adjective (or outcome noun).
    Antonym {
        /// The dimension.
        dim: Antonym,
        /// The pole: big, bright, fast, success, hot are positive.
        positive: bool,
    },
}

/// A labelled word: `text[start..end]` (byte offsets, on char boundaries) is one whole word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the word's first byte.
    pub start: usize,
    /// Byte offset one past the word's last byte.
    pub end: usize,
    /// What the word is.
    pub label: Label,
}

/// One generated document; serialises (one JSON object per line in JSONL) with a top-level
/// `"text"` field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The text.
    pub text: String,
    /// Its language.
    pub lang: Lang,
    /// Its mood.
    pub mood: Mood,
    /// Its topic.
    pub topic: Topic,
    /// Every labelled word, in text order.
    pub spans: Vec<Span>,
}

impl Document {
    /// The text of `span` (empty if the span does not lie in this document's text).
    pub fn span_text(&self, span: &Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    /// The mood-word spans, in text order (the first is the opener's).
    pub fn mood_spans(&self) -> impl Iterator<Item = &Span> + '_ {
        self.spans
            .iter()
            .filter(|s| matches!(s.label, Label::Mood(_)))
    }

    /// The topic-word spans, in text order.
    pub fn topic_spans(&self) -> impl Iterator<Item = &Span> + '_ {
        self.spans
            .iter()
            .filter(|s| matches!(s.label, Label::Topic(_)))
    }

    /// The antonym spans, in text order.
    pub fn antonym_spans(&self) -> impl Iterator<Item = &Span> + '_ {
        self.spans
            .iter()
            .filter(|s| matches!(s.label, Label::Antonym { .. }))
    }

    /// Byte offset of the end of the first mood word: from here on the mood is knowable. The
    /// text's length if there is no mood word (never for generated documents).
    pub fn mood_onset(&self) -> usize {
        self.mood_spans().next().map_or(self.text.len(), |s| s.end)
    }

    /// The mood-word spans after the first: their mood is determined by the text before them
    /// (the opener states it), so a model that tracks the mood can predict them.
    pub fn predictable_mood_spans(&self) -> impl Iterator<Item = &Span> + '_ {
        self.mood_spans().skip(1)
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusConfig {
    /// The seed: document `i` is drawn from `SplitMix64::stream(seed, i)`.
    pub seed: u64,
    /// How many documents [`generate`] returns.
    pub n_docs: usize,
    /// Probability that a document is French (the rest are English); clamped to `[0, 1]`.
    pub french_fraction: f64,
}

impl Default for CorpusConfig {
    /// Seed 0, 20 000 documents, 25 % French.
    fn default() -> Self {
        CorpusConfig {
            seed: 0,
            n_docs: 20_000,
            french_fraction: 0.25,
        }
    }
}

/// Documents `0..cfg.n_docs` of `cfg.seed`.
pub fn generate(cfg: &CorpusConfig) -> Vec<Document> {
    (0..cfg.n_docs as u64).map(|i| document(cfg, i)).collect()
}

/// Document `index` of `cfg.seed` (independent of `cfg.n_docs`).
pub fn document(cfg: &CorpusConfig, index: u64) -> Document {
    let mut rng = SplitMix64::stream(cfg.seed, index);
    // NaN compares false: English only.
    let lang = if rng.uniform() < cfg.french_fraction {
        Lang::Fr
    } else {
        Lang::En
    };
    let mood = Mood::ALL[rng.below(Mood::ALL.len())];
    let topic = Topic::ALL[rng.below(Topic::ALL.len())];
    let lex = lexicon(lang);
    let t = &lex.topics[topic.index()];
    let mood_sentence = |rng: &mut SplitMix64, frame: &str, reason: &str| {
        let word = pick(rng, mood_words(mood, lang));
        let mut b = Builder::default();
        b.mood_sentence(&render_mood_frame(frame, word, mood, reason), mood, lang);
        b
    };

    // 1. Opener.
    let frame = pick(&mut rng, lex.openers);
    let reason = pick(&mut rng, lex.reasons[mood.index()]);
    let opener = mood_sentence(&mut rng, frame, reason);

    // 2. Topic sentences: topic and antonym templates, drawn in proportion to their numbers.
    let n_templates = t.templates.len() + lex.antonym_templates.len();
    let mut order: Vec<usize> = (0..n_templates).collect();
    rng.shuffle(&mut order);
    let n_topic = 2 + rng.below(2);
    let mut topics: Vec<Builder> = order
        .iter()
        .take(n_topic)
        .map(|&k| {
            let template = match t.templates.get(k) {
                Some(tpl) => tpl,
                None => lex.antonym_templates[k - t.templates.len()],
            };
            let mut b = Builder::default();
            b.template(template, lang, topic, t, &mut rng);
            b
        })
        .collect();

    // 3. Mood-consistent sentences.
    let mut feelings: Vec<&'static str> = lex.feelings[mood.index()].to_vec();
    rng.shuffle(&mut feelings);
    let n_feel = 1 + rng.below(2);
    let mut feelings: Vec<Builder> = feelings
        .into_iter()
        .take(n_feel)
        .map(|s| {
            let mut b = Builder::default();
            b.text.push_str(s);
            b
        })
        .collect();

    // 4. Later mentions.
    let mut frames: Vec<&'static str> = lex.mentions.to_vec();
    rng.shuffle(&mut frames);
    let n_mentions = 1 + rng.below(2);
    let mut mentions: Vec<Builder> = frames
        .into_iter()
        .take(n_mentions)
        .map(|f| mood_sentence(&mut rng, f, ""))
        .collect();

    // Keep within the word budget (so documents fit the model's context), dropping topic, then
    // mood-consistent sentences, then the second mention, never below one of each.
    let words = |bs: &[Builder]| bs.iter().map(Builder::words).sum::<usize>();
    while opener.words() + words(&topics) + words(&feelings) + words(&mentions) > lex.max_words {
        if topics.len() > 1 {
            topics.pop();
        } else if feelings.len() > 1 {
            feelings.pop();
        } else if mentions.len() > 1 {
            mentions.pop();
        } else {
            break;
        }
    }

    // Topic and mood-consistent sentences shuffled together; the last mention ends the
    // document, a second one sits at a random point before it.
    let mut body: Vec<Builder> = topics.into_iter().chain(feelings).collect();
    rng.shuffle(&mut body);
    let last = mentions.remove(0);
    if let Some(second) = mentions.pop() {
        let at = rng.below(body.len() + 1);
        body.insert(at, second);
    }
    let mut doc = opener;
    for b in body.into_iter().chain([last]) {
        doc.append(b);
    }
    Document {
        text: doc.text,
        lang,
        mood,
        topic,
        spans: doc.spans,
    }
}

/// Writes `docs` as JSONL (one [`Document`] per line, top-level `"text"`), atomically.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_jsonl(docs: &[Document], path: &Path) -> Result<()> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    interp_core::write_atomic_with(
        path,
        "",
        |tmp| {
            let file = std::fs::File::create(tmp).map_err(io)?;
            let mut w = BufWriter::new(file);
            for doc in docs {
                serde_json::to_writer(&mut w, doc)?;
                w.write_all(b"\n").map_err(io)?;
            }
            w.flush().map_err(io)
        },
        io,
    )
}

/// Reads documents written by [`write_jsonl`] (blank lines are skipped).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Json`] if a line is not a document.
pub fn read_jsonl(path: &Path) -> Result<Vec<Document>> {
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut docs = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io)?;
        if !line.trim().is_empty() {
            docs.push(serde_json::from_str(&line)?);
        }
    }
    Ok(docs)
}

/// The mood words of `mood` in `lang`; the first is [`base_word`].
pub fn mood_words(mood: Mood, lang: Lang) -> &'static [&'static str] {
    match (lang, mood) {
        (Lang::En, Mood::Happy) => &["happy", "glad", "joyful", "cheerful"],
        (Lang::En, Mood::Sad) => &["sad", "unhappy", "gloomy", "miserable"],
        (Lang::En, Mood::Excited) => &["excited", "thrilled", "eager"],
        (Lang::En, Mood::Angry) => &["angry", "furious", "mad"],
        (Lang::En, Mood::Calm) => &["calm", "relaxed", "peaceful"],
        (Lang::En, Mood::Anxious) => &["anxious", "nervous", "worried"],
        (Lang::Fr, Mood::Happy) => &["heureux", "joyeux", "content", "ravi", "enchanté", "comblé"],
        (Lang::Fr, Mood::Sad) => &["triste", "malheureux", "abattu", "déprimé"],
        (Lang::Fr, Mood::Excited) => &["excité", "enthousiaste"],
        (Lang::Fr, Mood::Angry) => &["furieux", "fâché"],
        (Lang::Fr, Mood::Calm) => &["calme", "détendu", "paisible"],
        (Lang::Fr, Mood::Anxious) => &["anxieux", "nerveux", "inquiet"],
    }
}

/// The emoticon that follows every mood word of `mood`, in both languages ("I'm so happy :)
/// because …", "Je suis triste :( parce que …"): happy `:)`, sad `:(`, excited `!!`, angry `>:(`,
/// calm `~`, anxious `:/` (punctuation only, so that each is one pre-token of the byte-level
/// tokenizer). It makes the mood *category*, not just the word, what a model must
/// know at the mood word to predict the next token, so the category is a planted ground truth an
/// SAE can find there: one feature for glad, joyful and heureux alike.
pub fn mood_marker(mood: Mood) -> &'static str {
    match mood {
        Mood::Happy => ":)",
        Mood::Sad => ":(",
        Mood::Excited => "!!",
        Mood::Angry => ">:(",
        Mood::Calm => "~",
        Mood::Anxious => ":/",
    }
}

/// The base mood word: EN happy, sad, excited, angry, calm, anxious; FR heureux, triste,
/// excité, furieux, calme, anxieux.
pub fn base_word(mood: Mood, lang: Lang) -> &'static str {
    mood_words(mood, lang)[0]
}

/// The words of one antonym pole in `lang`: one English word; French masculine then feminine
/// forms (`["grand", "grande"]`; one form where they coincide, and for the nouns succès /
/// échec).
pub fn antonym_words(dim: Antonym, positive: bool, lang: Lang) -> &'static [&'static str] {
    match (lang, dim, positive) {
        (Lang::En, Antonym::Size, true) => &["big"],
        (Lang::En, Antonym::Size, false) => &["small"],
        (Lang::En, Antonym::Brightness, true) => &["bright"],
        (Lang::En, Antonym::Brightness, false) => &["dark"],
        (Lang::En, Antonym::Speed, true) => &["fast"],
        (Lang::En, Antonym::Speed, false) => &["slow"],
        (Lang::En, Antonym::Outcome, true) => &["success"],
        (Lang::En, Antonym::Outcome, false) => &["failure"],
        (Lang::En, Antonym::Temperature, true) => &["hot"],
        (Lang::En, Antonym::Temperature, false) => &["cold"],
        (Lang::Fr, Antonym::Size, true) => &["grand", "grande"],
        (Lang::Fr, Antonym::Size, false) => &["petit", "petite"],
        (Lang::Fr, Antonym::Brightness, true) => &["lumineux", "lumineuse"],
        (Lang::Fr, Antonym::Brightness, false) => &["sombre"],
        (Lang::Fr, Antonym::Speed, true) => &["rapide"],
        (Lang::Fr, Antonym::Speed, false) => &["lent", "lente"],
        (Lang::Fr, Antonym::Outcome, true) => &["succès"],
        (Lang::Fr, Antonym::Outcome, false) => &["échec"],
        (Lang::Fr, Antonym::Temperature, true) => &["chaud", "chaude"],
        (Lang::Fr, Antonym::Temperature, false) => &["froid", "froide"],
    }
}

/// Every word labelled with `topic` in `lang` documents (nouns, then the other topic words),
/// without duplicates.
pub fn topic_words(topic: Topic, lang: Lang) -> Vec<&'static str> {
    let t = &lexicon(lang).topics[topic.index()];
    let mut out: Vec<&'static str> = Vec::new();
    let nouns = t.nouns.iter().chain(t.feminine);
    let literals = t.templates.iter().flat_map(|tpl| bracketed(tpl));
    for w in nouns.copied().chain(literals) {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Five fixed sentences stating `mood` with its [`base_word`], for the emotion-direction
/// reproduction ("I'm so happy :) I got the promotion I wanted.", "Je suis heureux :) parce que
/// j'ai eu le travail."). Each is an opener the generator itself produces (same frames and reasons),
/// so the prompts are in distribution.
pub fn emotion_prompts(mood: Mood, lang: Lang) -> [String; 5] {
    let lex = lexicon(lang);
    let reasons = lex.reasons[mood.index()];
    let word = base_word(mood, lang);
    // (opener frame, reason) pairs; frame 4 has no reason.
    [(0, 0), (3, 2), (2, 1), (1, 3), (4, 0)]
        .map(|(f, r)| render_mood_frame(lex.openers[f], word, mood, reasons[r]))
}

/// Each of [`emotion_prompts`] followed by the opening of a later mention ("I am still",
/// "Je suis toujours"): prompts that end where the document's mood word comes next, so the
/// model's state at the last token carries the mood without a mood word there. Features read
/// at that token are the ones that make the model *produce* the mood (steering features),
/// unlike the features of the mood word itself, which predict its emoticon.
pub fn mood_context_prompts(mood: Mood, lang: Lang) -> [String; 5] {
    let then = match lang {
        Lang::En => "I am still",
        Lang::Fr => "Je suis toujours",
    };
    emotion_prompts(mood, lang).map(|p| format!("{p} {then}"))
}

/// The mood contexts of `mood` ([`mood_context_prompts`]) and those of every other mood: the
/// two prompt sets that contrast `mood` with the rest.
pub fn mood_contexts_against_others(mood: Mood, lang: Lang) -> (Vec<String>, Vec<String>) {
    let others = Mood::ALL
        .into_iter()
        .filter(|&m| m != mood)
        .flat_map(|m| mood_context_prompts(m, lang))
        .collect();
    (mood_context_prompts(mood, lang).to_vec(), others)
}

/// Every word of the `moods`, in both languages.
pub fn words_of_moods(moods: &[Mood]) -> Vec<&'static str> {
    moods
        .iter()
        .flat_map(|&m| {
            Lang::ALL
                .into_iter()
                .flat_map(move |l| mood_words(m, l).iter().copied())
        })
        .collect()
}

/// The opening of a document before its mood is stated ("Today I am", "Aujourd'hui, je
/// suis"): a neutral prompt whose next word is a mood word of any mood.
pub fn neutral_prompt(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Today I am",
        Lang::Fr => "Aujourd'hui, je suis",
    }
}

// ---------------------------------------------------------------------------------------------
// Generation machinery.

fn pick<T: Copy>(rng: &mut SplitMix64, items: &[T]) -> T {
    // Every table is non-empty (the tests check each one is used).
    items[rng.below(items.len())]
}

/// Fills a mood frame: `{m}` the mood word followed by its mood's [`mood_marker`], `{r}` the
/// reason, `{R}` the reason capitalised.
fn render_mood_frame(frame: &str, word: &str, mood: Mood, reason: &str) -> String {
    frame
        .replace("{R}", &capitalize(reason))
        .replace("{r}", reason)
        .replace("{m}", &format!("{word} {}", mood_marker(mood)))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The `[word]` literals of a template.
fn bracketed(template: &'static str) -> impl Iterator<Item = &'static str> {
    template
        .split('[')
        .skip(1)
        .filter_map(|s| s.split(']').next())
}

#[derive(Default)]
struct Builder {
    text: String,
    spans: Vec<Span>,
}

impl Builder {
    fn words(&self) -> usize {
        self.text.split_whitespace().count()
    }

    /// Appends `other` as the next sentence (after a space).
    fn append(&mut self, other: Builder) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.spans.extend(other.spans.into_iter().map(|s| Span {
            start: s.start + base,
            end: s.end + base,
            ..s
        }));
    }

    fn push_label(&mut self, word: &str, label: Label) {
        let start = self.text.len();
        self.text.push_str(word);
        self.spans.push(Span {
            start,
            end: self.text.len(),
            label,
        });
    }

    /// A rendered sentence whose only labelled words are the mood words of `mood`.
    fn mood_sentence(&mut self, s: &str, mood: Mood, lang: Lang) {
        let base = self.text.len();
        self.text.push_str(s);
        for w in mood_words(mood, lang) {
            for (at, _) in whole_word_matches(s, w) {
                self.spans.push(Span {
                    start: base + at,
                    end: base + at + w.len(),
                    label: Label::Mood(mood),
                });
            }
        }
        self.spans.sort_by_key(|s| s.start);
    }

    /// Renders a topic or antonym template:
    /// - `{n}` / `{N}`: a topic noun with its definite article (`{N}` capitalised), the noun
    ///   labelled; French picks `le` / `la` / `l'` and records the gender for `{a}`, `{b}`;
    /// - `{a}`: an antonym adjective (size, brightness, speed, temperature), agreeing with the
    ///   last noun; `{b}`: another one, of a different dimension than the last `{a}`;
    /// - `{o}`: success / failure;
    /// - `[word]`: a literal topic word, labelled.
    fn template(
        &mut self,
        template: &'static str,
        lang: Lang,
        topic: Topic,
        t: &TopicLex,
        rng: &mut SplitMix64,
    ) {
        let mut feminine = false;
        let mut last_dim: Option<Antonym> = None;
        let mut last_noun: Option<&str> = None;
        let mut rest = template;
        while let Some(i) = rest.find(['{', '[']) {
            self.text.push_str(&rest[..i]);
            let open = rest.as_bytes()[i];
            let close = if open == b'{' { '}' } else { ']' };
            let Some(j) = rest[i..].find(close).map(|j| i + j) else {
                rest = &rest[i..];
                break;
            };
            let key = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if open == b'[' {
                self.push_label(key, Label::Topic(topic));
                continue;
            }
            match key {
                "n" | "N" => {
                    let n_m = t.nouns.len();
                    let total = n_m + t.feminine.len();
                    if total == 0 {
                        continue;
                    }
                    // Not a word the template already names, nor the previous noun.
                    let noun_at = |k: usize| {
                        if k < n_m {
                            t.nouns[k]
                        } else {
                            t.feminine[k - n_m]
                        }
                    };
                    let fresh: Vec<usize> = (0..total)
                        .filter(|&k| {
                            let w = noun_at(k);
                            Some(w) != last_noun && !bracketed(template).any(|l| l == w)
                        })
                        .collect();
                    let k = if fresh.is_empty() {
                        rng.below(total)
                    } else {
                        pick(rng, &fresh)
                    };
                    let noun = noun_at(k);
                    feminine = k >= n_m;
                    last_noun = Some(noun);
                    let article = match lang {
                        Lang::En => "the ",
                        Lang::Fr if starts_with_vowel(noun) => "l'",
                        Lang::Fr if feminine => "la ",
                        Lang::Fr => "le ",
                    };
                    if key == "N" {
                        self.text.push_str(&capitalize(article));
                    } else {
                        self.text.push_str(article);
                    }
                    self.push_label(noun, Label::Topic(topic));
                }
                "a" | "b" => {
                    let choices: Vec<Antonym> = Antonym::ADJECTIVES
                        .into_iter()
                        .filter(|d| key == "a" || Some(*d) != last_dim)
                        .collect();
                    let dim = pick(rng, &choices);
                    if key == "a" {
                        last_dim = Some(dim);
                    }
                    let positive = rng.below(2) == 0;
                    let forms = antonym_words(dim, positive, lang);
                    let word = if feminine {
                        forms[forms.len() - 1]
                    } else {
                        forms[0]
                    };
                    self.push_label(word, Label::Antonym { dim, positive });
                }
                "o" => {
                    let positive = rng.below(2) == 0;
                    let dim = Antonym::Outcome;
                    self.push_label(
                        antonym_words(dim, positive, lang)[0],
                        Label::Antonym { dim, positive },
                    );
                }
                other => {
                    // Unknown placeholder: keep it verbatim (never happens with the tables).
                    self.text.push('{');
                    self.text.push_str(other);
                    self.text.push('}');
                }
            }
        }
        self.text.push_str(rest);
    }
}

fn starts_with_vowel(word: &str) -> bool {
    word.chars()
        .next()
        .is_some_and(|c| "aeiouyhàâéèêëîïôûù".contains(c.to_lowercase().next().unwrap_or(c)))
}

/// Byte offsets of the whole-word occurrences of `word` in `text` (neighbours are not
/// alphanumeric).
pub(crate) fn whole_word_matches<'a>(
    text: &'a str,
    word: &'a str,
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.match_indices(word).filter(move |&(at, w)| {
        let before = text[..at].chars().next_back();
        let after = text[at + w.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

// ---------------------------------------------------------------------------------------------
// Lexicon.

struct TopicLex {
    /// Nouns for `{n}`: all of them in English, the masculine ones in French.
    nouns: &'static [&'static str],
    /// Feminine nouns for `{n}` (empty in English).
    feminine: &'static [&'static str],
    /// Topic sentence templates.
    templates: &'static [&'static str],
}

struct Lexicon {
    /// Opener frames: `{m}` mood word, `{r}` / `{R}` reason.
    openers: &'static [&'static str],
    /// Reasons per mood (indexed by `Mood as usize`).
    reasons: [&'static [&'static str]; 6],
    /// Mood-consistent sentences without mood words, per mood.
    feelings: [&'static [&'static str]; 6],
    /// Later-mention frames: `{m}` mood word.
    mentions: &'static [&'static str],
    /// Topic-independent templates with antonyms.
    antonym_templates: &'static [&'static str],
    /// Word budget of a document.
    max_words: usize,
    /// Per topic (indexed by `Topic as usize`).
    topics: [TopicLex; 6],
}

fn lexicon(lang: Lang) -> &'static Lexicon {
    match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
    }
}

static EN: Lexicon = Lexicon {
    openers: &[
        "I'm so {m} {r}.",
        "I'm so {m} because {r}.",
        "Today I am {m} because {r}.",
        "{R} and I'm so {m}.",
        "I feel so {m} today.",
        "I am {m} this morning.",
    ],
    reasons: [
        &[
            "I got the promotion I wanted",
            "my friends came to visit",
            "I'll be on a vacation tomorrow",
            "my sister had a baby",
        ],
        &[
            "my dog is sick",
            "my best friend moved away",
            "I lost my job",
            "nobody called me on my birthday",
        ],
        &[
            "we leave for the trip tomorrow",
            "my favourite band is coming to town",
            "I start my new job on Monday",
            "we are going to the beach",
        ],
        &[
            "the bus was late",
            "someone broke my window",
            "my boss yelled at me",
            "my neighbour took my parking spot",
        ],
        &[
            "the house is quiet",
            "I had a long walk by the lake",
            "the holidays have started",
            "I finished all my work",
        ],
        &[
            "the exam is tomorrow",
            "I have to speak in public",
            "the doctor has not called back",
            "I have an interview today",
        ],
    ],
    feelings: [
        &[
            "We laugh all day.",
            "I smile at everyone I meet.",
            "I sing in the shower.",
            "Everything makes me laugh.",
            "I dance around the house.",
        ],
        &[
            "I cry all night.",
            "I stay in bed and watch the rain.",
            "Nothing feels right.",
            "I miss my old friends.",
            "Tears run down my face.",
        ],
        &[
            "I can't wait for tomorrow.",
            "I jump up and down.",
            "I talk about it all day.",
            "I can hardly sit still.",
            "I count the hours.",
        ],
        &[
            "I shout at everyone.",
            "I slam the door.",
            "My face turns red.",
            "I kick the wall.",
            "I want to break something.",
        ],
        &[
            "I breathe slowly.",
            "I sit by the window and read.",
            "Nothing can bother me.",
            "I listen to soft music.",
            "The world feels quiet.",
        ],
        &[
            "My hands shake.",
            "I cannot sleep at night.",
            "I check my phone again and again.",
            "My stomach hurts.",
            "I bite my nails.",
        ],
    ],
    mentions: &[
        "I feel so {m}.",
        "I am still {m}.",
        "Everyone can see I am {m}.",
        "I am really {m} now.",
        "Tonight I am still {m}.",
    ],
    antonym_templates: &[
        "{N} was {a}.",
        "{N} was {a} and {b}.",
        "{N} was a {o}.",
        "Everyone said {n} was {a}.",
        "In the end, {n} was a {o}.",
    ],
    max_words: 60,
    topics: [
        TopicLex {
            nouns: &[
                "experiment",
                "microscope",
                "telescope",
                "theory",
                "formula",
                "sample",
                "planet",
                "atom",
                "cell",
                "molecule",
                "laser",
                "rocket",
                "magnet",
                "battery",
                "crystal",
                "fossil",
            ],
            feminine: &[],
            templates: &[
                "We did an [experiment] with {n} in the [lab].",
                "The [scientist] looked at {n} under the [microscope].",
                "In [physics] class we [measure] {n} every week.",
                "My teacher says [science] is about asking good questions.",
                "We [study] {n} and write down the [data].",
                "The [research] on {n} took three months.",
                "In [chemistry] we [observe] {n} for hours.",
                "The [scientist] said he wants to [discover] how {n} works.",
                "Our [biology] teacher showed us {n} and the [equation].",
            ],
        },
        TopicLex {
            nouns: &[
                "bride",
                "groom",
                "ring",
                "veil",
                "bouquet",
                "ceremony",
                "reception",
                "speech",
                "band",
                "invitation",
                "photographer",
                "limousine",
                "proposal",
                "anniversary",
                "engagement",
                "bridesmaid",
            ],
            feminine: &[],
            templates: &[
                "My cousin said he will [marry] his partner in June.",
                "At the [wedding], {n} was the first thing everyone saw.",
                "The [couple] said their [vows] before {n}.",
                "We planned {n} for the [wedding] for a year.",
                "After the [ceremony], the [couple] left for their [honeymoon].",
                "The [bride] and the [groom] danced near {n}.",
                "Everyone wanted to [celebrate] with the [couple].",
                "The [photographer] took a picture of {n}.",
                "My aunt got [married] and talked about {n} for weeks.",
            ],
        },
        TopicLex {
            nouns: &[
                "church",
                "temple",
                "mosque",
                "prayer",
                "candle",
                "choir",
                "priest",
                "monk",
                "altar",
                "hymn",
                "sermon",
                "chapel",
                "bell",
                "scripture",
                "pilgrimage",
                "ritual",
            ],
            feminine: &[],
            templates: &[
                "On Sunday we go to {n} to [pray].",
                "The [priest] spoke about [faith] and hope.",
                "Many people [believe] that {n} is [holy].",
                "The [choir] sang a [hymn] near {n}.",
                "My grandmother lit {n} and said a [prayer].",
                "The [monk] says he spends the morning with {n}.",
                "My family takes [religion] very seriously.",
                "We [worship] together every week.",
                "The [pilgrims] walked for days to see {n}.",
            ],
        },
        TopicLex {
            nouns: &[
                "dress",
                "jacket",
                "shirt",
                "skirt",
                "scarf",
                "hat",
                "coat",
                "sweater",
                "handbag",
                "belt",
                "necklace",
                "collection",
                "runway",
                "fabric",
                "suit",
                "boutique",
            ],
            feminine: &[],
            templates: &[
                "The [designer] showed {n} at the [fashion] show.",
                "I want to [wear] {n} to the party.",
                "This year every [outfit] has {n}.",
                "She bought {n} at the [boutique].",
                "The [tailor] said he made {n} by hand.",
                "My sister has great [style] and loves {n}.",
                "The [model] walked down the [runway] in {n}.",
                "Everyone at school copies my [outfit].",
                "The new [trend] is to match {n} with {n}.",
            ],
        },
        TopicLex {
            nouns: &[
                "cake", "soup", "bread", "pizza", "salad", "cheese", "apple", "pasta", "sauce",
                "pie", "cookie", "sandwich", "omelette", "coffee", "rice", "chicken",
            ],
            feminine: &[],
            templates: &[
                "We [cook] {n} in the [kitchen] every evening.",
                "The [chef] at the [restaurant] said he made {n}.",
                "My mother likes to [bake] {n} on Sundays.",
                "For [dinner] we [ate] {n} with friends.",
                "This [recipe] for {n} is very old.",
                "I want to [taste] {n} before the party.",
                "Good [food] makes the day better.",
                "We [eat] {n} at the [restaurant] near the station.",
                "The [waiter] brought {n} and {n} to our table.",
            ],
        },
        TopicLex {
            nouns: &[
                "match",
                "race",
                "ball",
                "team",
                "goal",
                "coach",
                "stadium",
                "referee",
                "marathon",
                "trophy",
                "medal",
                "tournament",
                "bicycle",
                "racket",
                "player",
                "season",
            ],
            feminine: &[],
            templates: &[
                "Our [team] played {n} in the [stadium].",
                "The [coach] said he wants us to [train] harder.",
                "Every [athlete] dreams of {n}.",
                "I [run] around the park before {n}.",
                "The [referee] stopped {n} twice.",
                "We watched {n} on television with my father.",
                "My brother says he plays [tennis] every Saturday.",
                "To [win] {n}, you need a good [team].",
                "In [football], everyone talks about {n}.",
            ],
        },
    ],
};

static FR: Lexicon = Lexicon {
    openers: &[
        "Je suis {m} parce que {r}.",
        "Je suis si {m} parce que {r}.",
        "Aujourd'hui, je suis {m} parce que {r}.",
        "{R} et je suis si {m}.",
        "Je me sens {m} aujourd'hui.",
        "Je suis {m} ce matin.",
    ],
    reasons: [
        &[
            "j'ai eu le travail",
            "mes amis sont venus me voir",
            "je pars en vacances demain",
            "ma sœur a eu un bébé",
        ],
        &[
            "mon chien est malade",
            "mon meilleur ami est parti",
            "j'ai perdu mon emploi",
            "personne ne m'a appelé pour mon anniversaire",
        ],
        &[
            "nous partons en voyage demain",
            "mon groupe préféré vient en ville",
            "je commence mon nouveau travail lundi",
            "nous allons à la plage",
        ],
        &[
            "le bus était en retard",
            "quelqu'un a cassé ma fenêtre",
            "mon patron a crié sur moi",
            "mon voisin a pris ma place",
        ],
        &[
            "la maison est silencieuse",
            "j'ai fait une longue promenade au bord du lac",
            "les vacances ont commencé",
            "j'ai fini tout mon travail",
        ],
        &[
            "l'examen est demain",
            "je dois parler en public",
            "le médecin n'a pas rappelé",
            "j'ai un entretien aujourd'hui",
        ],
    ],
    feelings: [
        &[
            "Nous rions toute la journée.",
            "Je souris à tout le monde.",
            "Je chante sous la douche.",
            "Tout me fait rire.",
            "Je danse dans la maison.",
        ],
        &[
            "Je pleure toute la nuit.",
            "Je reste au lit et je regarde la pluie.",
            "Rien ne va.",
            "Mes vieux amis me manquent.",
            "Les larmes coulent sur mon visage.",
        ],
        &[
            "J'ai hâte d'être à demain.",
            "Je saute partout.",
            "J'en parle toute la journée.",
            "Je ne tiens pas en place.",
            "Je compte les heures.",
        ],
        &[
            "Je crie sur tout le monde.",
            "Je claque la porte.",
            "Mon visage devient rouge.",
            "Je frappe le mur.",
            "J'ai envie de tout casser.",
        ],
        &[
            "Je respire lentement.",
            "Je lis près de la fenêtre.",
            "Rien ne peut me déranger.",
            "J'écoute une musique douce.",
            "Le monde semble tranquille.",
        ],
        &[
            "Mes mains tremblent.",
            "Je ne dors pas la nuit.",
            "Je regarde mon téléphone sans arrêt.",
            "J'ai mal au ventre.",
            "Je me ronge les ongles.",
        ],
    ],
    mentions: &[
        "Je me sens si {m}.",
        "Je suis toujours {m}.",
        "Tout le monde voit que je suis {m}.",
        "Je suis vraiment {m} maintenant.",
        "Ce soir, je suis encore {m}.",
    ],
    antonym_templates: &[
        "{N} était {a}.",
        "{N} était {a} et {b}.",
        "{N} a été un {o}.",
        "Tout le monde a dit que {n} était {a}.",
        "À la fin, {n} a été un {o}.",
    ],
    max_words: 46,
    topics: [
        TopicLex {
            nouns: &[
                "microscope",
                "télescope",
                "atome",
                "échantillon",
                "aimant",
                "cristal",
                "fossile",
                "laser",
                "robot",
            ],
            feminine: &[
                "expérience",
                "théorie",
                "formule",
                "planète",
                "cellule",
                "molécule",
                "fusée",
                "batterie",
            ],
            templates: &[
                "Nous faisons une [expérience] avec {n} au [laboratoire].",
                "Le [scientifique] regarde {n} au [microscope].",
                "En cours de [physique], nous [mesurons] {n} chaque semaine.",
                "Mon professeur dit que la [science] commence par une question.",
                "Nous [étudions] {n} et nous notons les [données].",
                "La [recherche] sur {n} a duré trois mois.",
                "En [chimie], nous [observons] {n} pendant des heures.",
                "Le [scientifique] veut [découvrir] comment {n} fonctionne.",
                "Notre professeur de [biologie] nous a montré {n} et l'[équation].",
            ],
        },
        TopicLex {
            nouns: &[
                "bouquet",
                "voile",
                "discours",
                "orchestre",
                "photographe",
                "témoin",
                "anneau",
                "cortège",
                "marié",
            ],
            feminine: &[
                "mariée",
                "bague",
                "cérémonie",
                "réception",
                "invitation",
                "alliance",
                "limousine",
            ],
            templates: &[
                "Ma cousine va se [marier] en juin.",
                "Au [mariage], tout le monde regardait {n}.",
                "Le [couple] a prononcé ses [vœux] devant {n}.",
                "Nous avons préparé {n} du [mariage] pendant un an.",
                "Après la [cérémonie], le [couple] est parti en voyage de [noces].",
                "Les [mariés] ont regardé {n} en souriant.",
                "Tout le monde voulait [célébrer] avec le [couple].",
                "Le [photographe] a pris {n} en photo.",
                "Ma tante s'est [mariée] et a parlé de la [cérémonie] pendant des semaines.",
            ],
        },
        TopicLex {
            nouns: &[
                "temple",
                "cierge",
                "chœur",
                "prêtre",
                "moine",
                "autel",
                "hymne",
                "sermon",
                "pèlerinage",
                "clocher",
                "rituel",
            ],
            feminine: &[
                "église", "mosquée", "prière", "chapelle", "cloche", "bougie", "messe",
            ],
            templates: &[
                "Le dimanche, nous allons à l'[église] pour [prier].",
                "Le [prêtre] a parlé de la [foi] et de l'espoir.",
                "Mon oncle regarde {n} en silence.",
                "Le [chœur] a chanté un [hymne] devant {n}.",
                "Ma tante a allumé {n} et a dit une [prière].",
                "Le [moine] passe la matinée à regarder {n}.",
                "La [religion] compte beaucoup pour ma famille.",
                "Nous célébrons le [culte] ensemble chaque semaine.",
                "Beaucoup de gens [croient] que {n} protège le village.",
            ],
        },
        TopicLex {
            nouns: &[
                "manteau", "pantalon", "chapeau", "foulard", "pull", "sac", "collier", "costume",
                "tissu", "défilé", "blouson",
            ],
            feminine: &[
                "robe",
                "veste",
                "chemise",
                "jupe",
                "ceinture",
                "écharpe",
                "collection",
            ],
            templates: &[
                "Le [couturier] a présenté {n} au [défilé] de [mode].",
                "Je veux [porter] {n} à la fête.",
                "Cette année, la [tendance] est {n}.",
                "Elle a acheté {n} dans une [boutique].",
                "Le [couturier] a cousu {n} à la main.",
                "Ma sœur a beaucoup de [style] et adore {n}.",
                "Le [mannequin] a défilé avec {n}.",
                "Toute l'école copie ma [tenue].",
                "La nouvelle [tendance] est de porter {n} avec {n}.",
            ],
        },
        TopicLex {
            nouns: &[
                "gâteau", "pain", "fromage", "riz", "poulet", "sandwich", "café", "thé", "biscuit",
            ],
            feminine: &[
                "soupe", "pizza", "salade", "pomme", "tarte", "sauce", "omelette", "crêpe",
                "baguette",
            ],
            templates: &[
                "Nous [cuisinons] {n} dans la [cuisine] chaque soir.",
                "Le [chef] du [restaurant] a préparé {n}.",
                "Ma mère aime préparer {n} le dimanche.",
                "Pour le [dîner], nous avons [mangé] {n} avec des amis.",
                "Cette [recette] pour {n} est très ancienne.",
                "Je veux [goûter] {n} avant la fête.",
                "La bonne [nourriture] rend la journée meilleure.",
                "Nous [mangeons] {n} au [restaurant] près de la gare.",
                "Le [serveur] a apporté {n} et {n} à notre table.",
            ],
        },
        TopicLex {
            nouns: &[
                "match",
                "ballon",
                "but",
                "stade",
                "marathon",
                "trophée",
                "tournoi",
                "vélo",
                "joueur",
                "championnat",
            ],
            feminine: &[
                "course",
                "équipe",
                "médaille",
                "raquette",
                "saison",
                "piscine",
                "coupe",
            ],
            templates: &[
                "Notre [équipe] a joué {n} au [stade].",
                "L'[entraîneur] nous a dit de nous [entraîner] plus.",
                "Chaque [athlète] rêve de [gagner] {n}.",
                "Je vais [courir] dans le parc avant {n}.",
                "L'[arbitre] a arrêté {n} deux fois.",
                "Nous avons regardé {n} à la télévision avec mon père.",
                "Mon frère joue au [tennis] chaque samedi.",
                "Pour [gagner] {n}, il faut une bonne [équipe].",
                "Au [football], tout le monde regarde {n}.",
            ],
        },
    ],
};
