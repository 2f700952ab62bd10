//! Prompt sets for the emotion-feature study (seed 001 §1.1, §1.2.1): prompts stating one
//! emotion, each with the word to read; the toy world's ([`EmotionPrompts::toy`], from
//! [`emotion_prompts`]) and the write-up's for GPT-2 small ([`EmotionPrompts::write_up`],
//! the data below).

use interp_sae::probe::WordPrompt;

use super::{base_word, emotion_prompts, Lang, Mood};
use crate::error::{Error, Result};

/// The write-up's happy prompts, verbatim (the third says "glad", read at that word).
pub const WRITE_UP_HAPPY: [(&str, &str); 5] = [
    ("I'll be on a vacation tomorrow and I'm so happy.", "happy"),
    ("My mom brings home a new puppy and I'm so happy.", "happy"),
    ("I'm so glad I got the job I wanted.", "glad"),
    ("I feel so happy when I'm with my friends.", "happy"),
    ("I'm so happy I got the promotion I wanted.", "happy"),
];
/// Sad prompts in the same frames (the write-up does not list them).
pub const WRITE_UP_SAD: [(&str, &str); 5] = [
    ("My dog died yesterday and I'm so sad.", "sad"),
    ("My best friend moves away tomorrow and I'm so sad.", "sad"),
    ("I'm so sad I didn't get the job I wanted.", "sad"),
    ("I feel so sad when I'm alone at night.", "sad"),
    ("I'm so sad I lost the game I wanted to win.", "sad"),
];
/// Excited prompts in the same frames.
pub const WRITE_UP_EXCITED: [(&str, &str); 5] = [
    (
        "I'll see my favourite band tonight and I'm so excited.",
        "excited",
    ),
    (
        "My dad bought tickets for the final and I'm so excited.",
        "excited",
    ),
    ("I'm so excited I got the job I wanted.", "excited"),
    ("I feel so excited when I'm about to travel.", "excited"),
    ("I'm so excited I got the promotion I wanted.", "excited"),
];
/// French happy prompts; the last is the write-up's Fig. 7 sentence.
pub const WRITE_UP_HAPPY_FR: [(&str, &str); 5] = [
    (
        "Je serai en vacances demain et je suis si heureux.",
        "heureux",
    ),
    (
        "Ma mère ramène un nouveau chiot et je suis si heureux.",
        "heureux",
    ),
    (
        "Je suis si heureux d'avoir eu le travail que je voulais.",
        "heureux",
    ),
    (
        "Je me sens si heureux quand je suis avec mes amis.",
        "heureux",
    ),
    (
        "J'ai obtenu la promotion que je voulais et je suis heureux.",
        "heureux",
    ),
];

/// Prompts stating one emotion, each with the word in it to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptSet {
    /// `"happy"`, `"sad"`, …
    pub name: String,
    /// `(prompt, word)`, the word as spelled in the prompt.
    pub prompts: Vec<(String, String)>,
}

impl PromptSet {
    /// The set `name` of `(prompt, word)` pairs.
    ///
    /// # Errors
    /// [`Error::EmptyPromptSet`] without prompts; [`Error::PromptWord`] when a word does not
    /// occur in its prompt.
    pub fn new(name: &str, pairs: &[(&str, &str)]) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::EmptyPromptSet { name: name.into() });
        }
        if let Some((text, word)) = pairs.iter().find(|(t, w)| w.is_empty() || !t.contains(w)) {
            return Err(Error::PromptWord {
                text: text.to_string(),
                word: word.to_string(),
            });
        }
        Ok(PromptSet {
            name: name.into(),
            prompts: pairs
                .iter()
                .map(|(t, w)| (t.to_string(), w.to_string()))
                .collect(),
        })
    }

    /// The toy corpus' five [`emotion_prompts`] of `mood` in `lang`, read at its
    /// [`base_word`], named by the mood.
    pub fn toy(mood: Mood, lang: Lang) -> Self {
        let word = base_word(mood, lang);
        PromptSet {
            name: mood.name().into(),
            prompts: emotion_prompts(mood, lang)
                .into_iter()
                .map(|t| (t, word.to_string()))
                .collect(),
        }
    }

    /// The prompts as [`WordPrompt`]s, for [`interp_sae::probe`].
    pub fn word_prompts(&self) -> Vec<WordPrompt<'_>> {
        self.prompts
            .iter()
            .map(|(t, w)| WordPrompt::new(t, w))
            .collect()
    }

    /// The words read, each once, in order, joined by `/` (`"happy/glad"`).
    pub fn words(&self) -> String {
        let mut words: Vec<&str> = Vec::new();
        for (_, w) in &self.prompts {
            if !words.contains(&w.as_str()) {
                words.push(w);
            }
        }
        words.join("/")
    }
}

/// The prompts of the emotion-feature study: English emotions (happy and excited among them,
/// for §1.1.2) and French happy (§1.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmotionPrompts {
    /// One set per English emotion.
    pub english: Vec<PromptSet>,
    /// French prompts stating happiness; the last one is the example sentence of Fig. 7.
    pub french_happy: PromptSet,
}

impl EmotionPrompts {
    /// The toy corpus' prompts: every mood in English ([`Mood::ALL`] order), happy in French.
    pub fn toy() -> Self {
        EmotionPrompts {
            english: Mood::ALL
                .iter()
                .map(|&m| PromptSet::toy(m, Lang::En))
                .collect(),
            french_happy: PromptSet::toy(Mood::Happy, Lang::Fr),
        }
    }

    /// The write-up's prompts for GPT-2 small: happy, sad, excited; French "heureux".
    pub fn write_up() -> Self {
        let set = |name, pairs: &[(&str, &str)]| {
            PromptSet::new(name, pairs).expect("the write-up's prompts contain their words")
        };
        EmotionPrompts {
            english: vec![
                set("happy", &WRITE_UP_HAPPY),
                set("sad", &WRITE_UP_SAD),
                set("excited", &WRITE_UP_EXCITED),
            ],
            french_happy: set("heureux", &WRITE_UP_HAPPY_FR),
        }
    }

    /// The position of the English set `name` in [`Self::english`].
    ///
    /// # Errors
    /// [`Error::NoPromptSet`] when there is none (the message lists those there are).
    pub fn index(&self, name: &str) -> Result<usize> {
        self.english
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| Error::NoPromptSet {
                name: name.into(),
                available: self
                    .english
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}
