//! The generator: document `i` of a seed drawn from the lexicon, with its labelled spans.

use interp_core::rng::SplitMix64;

use super::lexicon::{bracketed, lexicon, TopicLex};
use super::{antonym_words, mood_marker, mood_words};
use super::{Antonym, CorpusConfig, Document, Label, Lang, Mood, Span, Topic};

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

// ---------------------------------------------------------------------------------------------
// Generation machinery.

fn pick<T: Copy>(rng: &mut SplitMix64, items: &[T]) -> T {
    // Every table is non-empty (the tests check each one is used).
    items[rng.below(items.len())]
}

/// Fills a mood frame: `{m}` the mood word followed by its mood's [`mood_marker`], `{r}` the
/// reason, `{R}` the reason capitalised.
pub(super) fn render_mood_frame(frame: &str, word: &str, mood: Mood, reason: &str) -> String {
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
fn whole_word_matches<'a>(
    text: &'a str,
    word: &'a str,
) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    text.match_indices(word).filter(move |&(at, w)| {
        let before = text[..at].chars().next_back();
        let after = text[at + w.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}
