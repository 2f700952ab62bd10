//! A deterministic, seeded generator of short English and French documents.
//!
//! Every document has one **mood** (stated by the opener with a mood word and mentioned again
//! later, so a model can carry it forward), one **topic** (its sentences use that topic's
//! nouns and verbs) and some **antonym** adjectives ("The cake was big and hot."). Every
//! labelled word is emitted with its byte span in the text, so analyses can be scored against
//! known answers.
//!
//! Document `i` of seed `s` depends only on `(s, i)` and the French fraction
//! ([`SplitMix64::stream`](interp_core::rng::SplitMix64::stream)`(s, i)`), not on how many
//! documents are generated: a held-out set is just another seed.
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
//!
//! # Files
//!
//! - this file: the labels ([`Lang`], [`Mood`], [`Topic`], [`Antonym`], [`Label`], [`Span`]),
//!   [`Document`] and [`CorpusConfig`];
//! - `generate.rs`: the generator ([`generate`], [`document`]) and its template machinery;
//! - `jsonl.rs`: [`write_jsonl`] / [`read_jsonl`];
//! - `prompts.rs`: fixed prompts built from the lexicon ([`emotion_prompts`], …);
//! - `prompt_sets.rs`: the emotion study's prompt sets, the toy world's and the write-up's
//!   ([`EmotionPrompts`], [`PromptSet`]);
//! - `lexicon.rs`: the lexicon's shape and the small word tables ([`mood_words`],
//!   [`antonym_words`], …); `lexicon_en.rs` / `lexicon_fr.rs`: the English and French word
//!   lists the generator draws from.

mod generate;
mod jsonl;
mod lexicon;
mod lexicon_en;
mod lexicon_fr;
mod prompt_sets;
mod prompts;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use generate::{document, generate};
pub use jsonl::{read_jsonl, write_jsonl};
pub use lexicon::{antonym_words, base_word, mood_marker, mood_words, topic_words};
pub use prompt_sets::{
    EmotionPrompts, PromptSet, WRITE_UP_EXCITED, WRITE_UP_HAPPY, WRITE_UP_HAPPY_FR, WRITE_UP_SAD,
};
pub use prompts::{
    emotion_prompts, mood_context_prompts, mood_contexts_against_others, neutral_prompt,
    words_of_moods,
};

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
