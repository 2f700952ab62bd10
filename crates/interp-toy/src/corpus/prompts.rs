//! Fixed prompts built from the lexicon, for the analyses that reproduce known directions.

use super::generate::render_mood_frame;
use super::lexicon::lexicon;
use super::{base_word, mood_words, Lang, Mood};

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
