//! The lexicon: its shape ([`Lexicon`], [`TopicLex`]), the lookup by language, and the small
//! word tables (mood words, emoticons, antonym poles). The English and French sentence frames,
//! reasons and topic vocabularies are in `lexicon_en.rs` and `lexicon_fr.rs`.

use super::lexicon_en::EN;
use super::lexicon_fr::FR;
use super::{Antonym, Lang, Mood, Topic};

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

/// The `[word]` literals of a template.
pub(super) fn bracketed(template: &'static str) -> impl Iterator<Item = &'static str> {
    template
        .split('[')
        .skip(1)
        .filter_map(|s| s.split(']').next())
}

/// The vocabulary of one topic in one language.
pub(super) struct TopicLex {
    /// Nouns for `{n}`: all of them in English, the masculine ones in French.
    pub(super) nouns: &'static [&'static str],
    /// Feminine nouns for `{n}` (empty in English).
    pub(super) feminine: &'static [&'static str],
    /// Topic sentence templates.
    pub(super) templates: &'static [&'static str],
}

/// Everything the generator draws from in one language.
pub(super) struct Lexicon {
    /// Opener frames: `{m}` mood word, `{r}` / `{R}` reason.
    pub(super) openers: &'static [&'static str],
    /// Reasons per mood (indexed by `Mood as usize`).
    pub(super) reasons: [&'static [&'static str]; 6],
    /// Mood-consistent sentences without mood words, per mood.
    pub(super) feelings: [&'static [&'static str]; 6],
    /// Later-mention frames: `{m}` mood word.
    pub(super) mentions: &'static [&'static str],
    /// Topic-independent templates with antonyms.
    pub(super) antonym_templates: &'static [&'static str],
    /// Word budget of a document.
    pub(super) max_words: usize,
    /// Per topic (indexed by `Topic as usize`).
    pub(super) topics: [TopicLex; 6],
}

/// The lexicon of `lang`.
pub(super) fn lexicon(lang: Lang) -> &'static Lexicon {
    match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
    }
}
