//! Bad input gets a typed error that says what is wrong, never a panic.

use burn::module::Param;
use burn::tensor::Tensor;
use interp_dashboard::{gather_corpus, Error, FeatureSelection};
use interp_models::HookedTransformer;
use interp_sae::store::Corpus;

use super::common::{corpus, options, world};

#[test]
fn a_corpus_that_tokenizes_to_nothing_is_an_empty_corpus_error() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "{\"text\": \"\"}\n{\"text\": \"\"}\n").unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "a few words").unwrap();
    for path in [empty, short] {
        let e = gather_corpus(&model, &sae, &Corpus::open(&path).unwrap(), &options()).unwrap_err();
        assert!(
            matches!(e, Error::EmptyCorpus { .. }),
            "{}: {e:?}",
            path.display()
        );
        assert!(
            e.to_string()
                .contains("the corpus gives no window of 64 tokens"),
            "{e}"
        );
    }
}

#[test]
fn feature_ids_out_of_range_are_refused_before_the_pass() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path(), 10);
    let selection: FeatureSelection = "3,1024".parse().unwrap();
    let e = selection.tracked(sae.d_sae()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::FeatureOutOfRange {
                feature: 1024,
                d_sae: 1024
            }
        ),
        "{e:?}"
    );
    let mut opts = options();
    opts.features = Some(vec![5, 4096]);
    let e = gather_corpus(&model, &sae, &corpus, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "feature 4096 is out of range: the SAE has d_sae = 1024 (ids 0..1024)"
    );
    let e = interp_dashboard::logit_lens(&model, &sae, &[2000], 5).unwrap_err();
    assert!(
        matches!(e, Error::FeatureOutOfRange { feature: 2000, .. }),
        "{e:?}"
    );
}

#[test]
fn an_sae_whose_hook_the_model_lacks_is_refused() {
    let (model, mut sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path(), 10);
    sae.set_hook_name("blocks.9.hook_resid_post");
    let e = gather_corpus(&model, &sae, &corpus, &options()).unwrap_err();
    assert!(matches!(e, Error::Sae(_)), "{e:?}");
    assert!(e.to_string().contains("blocks.9"), "{e}");
    // A hook the model has, of another width than the SAE's d_in.
    sae.set_hook_name("blocks.1.mlp.hook_post");
    let e = gather_corpus(&model, &sae, &corpus, &options()).unwrap_err();
    assert!(e.to_string().contains("mlp.hook_post"), "{e}");
}

#[test]
fn nan_activations_are_a_non_finite_error() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path(), 10);
    let device = Default::default();
    let mut w = model.weights().clone();
    let n = w.blocks[0].mlp.b_out.val().dims()[0];
    w.blocks[0].mlp.b_out =
        Param::from_tensor(Tensor::from_floats(vec![f32::NAN; n].as_slice(), &device));
    let broken = HookedTransformer::new(model.cfg().clone(), w, &device)
        .with_tokenizer(model.tokenizer().unwrap().clone());
    let e = gather_corpus(&broken, &sae, &corpus, &options()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e:?}");
    assert!(e.to_string().contains("blocks.2.hook_resid_post"), "{e}");
}
