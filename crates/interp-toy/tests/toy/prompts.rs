//! The emotion study's prompt sets: the toy world's from its lexicon, the write-up's as data.

use interp_toy::corpus::{base_word, EmotionPrompts, Lang, Mood, PromptSet, WRITE_UP_HAPPY};
use interp_toy::Error;

#[test]
fn the_toy_sets_state_each_mood_with_its_base_word() {
    let p = EmotionPrompts::toy();
    let names: Vec<&str> = p.english.iter().map(|s| s.name.as_str()).collect();
    let want: Vec<&str> = Mood::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names, want);
    for (set, mood) in p.english.iter().zip(Mood::ALL) {
        assert_eq!(set.prompts.len(), 5);
        assert_eq!(set.words(), base_word(mood, Lang::En));
        assert!(set.prompts.iter().all(|(t, w)| t.contains(w.as_str())));
    }
    assert_eq!(p.french_happy.words(), "heureux");
    assert_eq!(p.index("excited").unwrap(), 2);
}

#[test]
fn the_write_up_sets_are_its_prompts() {
    let p = EmotionPrompts::write_up();
    let happy = &p.english[p.index("happy").unwrap()];
    assert_eq!(happy.words(), "happy/glad");
    assert_eq!(happy.prompts[2].0, "I'm so glad I got the job I wanted.");
    let wp = happy.word_prompts();
    assert_eq!((wp[2].text, wp[2].word), WRITE_UP_HAPPY[2]);
    assert_eq!(p.french_happy.name, "heureux");
    assert!(p.french_happy.prompts[4]
        .0
        .starts_with("J'ai obtenu la promotion"));
    match p.index("angry") {
        Err(Error::NoPromptSet { name, available }) => {
            assert_eq!(name, "angry");
            assert_eq!(available, "happy, sad, excited");
        }
        other => panic!("expected NoPromptSet, got {other:?}"),
    }
}

#[test]
fn prompt_sets_need_prompts_that_contain_their_word() {
    assert!(matches!(
        PromptSet::new("happy", &[]),
        Err(Error::EmptyPromptSet { .. })
    ));
    let err = PromptSet::new(
        "happy",
        &[("I'm so happy", "happy"), ("I'm so glad", "happy")],
    );
    assert!(
        matches!(&err, Err(Error::PromptWord { text, word }) if text == "I'm so glad" && word == "happy"),
        "{err:?}"
    );
    let ok = PromptSet::new("happy", &[("so happy", "happy"), ("so glad", "glad")]).unwrap();
    assert_eq!(ok.words(), "happy/glad");
}
