//! SAE training: ground-truth recovery, exact resume, dead-latent revival, failure handling.

use interp_sae::train::synthetic::{mean_max_cosine, superposition};
use interp_sae::train::{
    ActivationMatrix, ActivationSource, DeadPolicy, FitOptions, StepMetrics, TrainArch,
    TrainConfig, Trainer, CHECKPOINT_FILE, METRICS_FILE,
};
use interp_sae::Error;
use ndarray::{Array2, Axis};

fn single_threaded<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(f)
}

/// A small version of the synthetic benchmark the `train_synthetic` example runs in full.
#[test]
fn topk_recovers_a_planted_dictionary() {
    let data = superposition(32, 128, 3.0, 20_000, 1);
    let mut source = ActivationMatrix::new(data.activations.clone(), 0).unwrap();
    let mut cfg = TrainConfig::new(TrainArch::topk(3), 32, 128, 1500);
    cfg.batch_size = 256;
    let mut trainer = Trainer::new(cfg, &mut source).unwrap();
    let report = trainer.fit(&mut source, FitOptions::default()).unwrap();
    let sae = trainer.to_sae().unwrap();
    let mmcs = mean_max_cosine(data.dictionary.view(), sae.weights().w_dec.view());
    let last = report.history.last().unwrap();
    assert!(mmcs > 0.97, "MMCS {mmcs}");
    assert!(last.dead_fraction <= 0.02, "{last:?}");
    assert!(last.fvu < report.history[0].fvu, "FVU did not fall");
    // The SAE reads raw (unscaled) activations: its reconstructions explain most variance.
    let x = data.activations.slice(ndarray::s![..2000, ..]);
    let err = (&sae.forward(x).unwrap() - &x).mapv(|v| v * v).sum();
    let mean = x.mean_axis(Axis(0)).unwrap();
    let var = (&x - &mean).mapv(|v| v * v).sum();
    assert!(err / var < 0.5, "raw-unit FVU {}", err / var);
}

fn resume_config() -> TrainConfig {
    let mut cfg = TrainConfig::new(TrainArch::relu(0.01), 8, 48, 60);
    cfg.batch_size = 64;
    cfg.b_dec_init = interp_sae::train::BDecInit::Zeros;
    cfg.lr = 1e-3;
    cfg.log_every = 10;
    cfg.checkpoint_every = 20;
    cfg.dead_after_steps = 5;
    cfg.dead = DeadPolicy::Resample {
        every: 30,
        window: 10,
        threshold: 0.001,
        max_rounds: 2,
        sample_size: 128,
    };
    cfg
}

fn run(
    cfg: &TrainConfig,
    dir: &std::path::Path,
    stop_after: Option<u64>,
) -> (Vec<StepMetrics>, Array2<f32>) {
    let mut source = ActivationMatrix::new(one_direction_data(), 3).unwrap();
    let checkpoint = dir.join(CHECKPOINT_FILE);
    let mut trainer = if checkpoint.exists() {
        Trainer::resume(&checkpoint, &mut source).unwrap()
    } else {
        Trainer::new(cfg.clone(), &mut source).unwrap()
    };
    let opts = FitOptions {
        out_dir: Some(dir.to_path_buf()),
        stop_after,
        ..FitOptions::default()
    };
    let report = trainer.fit(&mut source, opts).unwrap();
    (
        report.history,
        trainer.to_sae().unwrap().weights().w_dec.clone(),
    )
}

#[test]
fn resume_from_a_checkpoint_equals_the_uninterrupted_run() {
    single_threaded(|| {
        let cfg = resume_config();
        let whole = tempfile::tempdir().unwrap();
        let (history, w_dec) = run(&cfg, whole.path(), None);
        assert!(
            history.iter().any(|m| m.revived > 0),
            "resampling should happen: {history:?}"
        );

        let split = tempfile::tempdir().unwrap();
        let (first, _) = run(&cfg, split.path(), Some(40));
        assert_eq!(first.last().unwrap().step, 40);
        let (resumed, w_dec_resumed) = run(&cfg, split.path(), None);
        assert_eq!(resumed, history);
        assert_eq!(w_dec_resumed, w_dec);
        let log = std::fs::read_to_string(split.path().join(METRICS_FILE)).unwrap();
        let expected: Vec<String> = history
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect();
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            expected,
            "metrics.jsonl must not duplicate the resumed interval"
        );
    });
}

/// Inputs along one direction: latents whose decoder row points away never fire.
fn one_direction_data() -> Array2<f32> {
    let mut g = interp_sae::train::SplitMix64::new(5);
    let u: Vec<f32> = (0..8).map(|_| g.normal()).collect();
    Array2::from_shape_fn((2048, 8), |(r, c)| (1.0 + (r % 7) as f32) * u[c])
}

fn revival(policy: DeadPolicy) -> Vec<StepMetrics> {
    let mut source = ActivationMatrix::new(one_direction_data(), 0).unwrap();
    let mut cfg = TrainConfig::new(TrainArch::relu(0.01), 8, 32, 40);
    cfg.batch_size = 128;
    cfg.log_every = 10;
    cfg.dead_after_steps = 5;
    cfg.b_dec_init = interp_sae::train::BDecInit::Zeros;
    cfg.lr = 1e-4;
    cfg.dead = policy;
    let mut trainer = Trainer::new(cfg, &mut source).unwrap();
    trainer
        .fit(&mut source, FitOptions::default())
        .unwrap()
        .history
}

#[test]
fn resampling_revives_dead_latents() {
    let h = revival(DeadPolicy::Resample {
        every: 20,
        window: 10,
        threshold: 0.0,
        max_rounds: 1,
        sample_size: 256,
    });
    // Steps 11–20: a third or more of the latents never fire; all are resampled at step 20.
    let never = h[1].density_histogram[0];
    assert!(
        never >= 8,
        "the case must start with dead latents: {:?}",
        h[1]
    );
    assert_eq!(h[1].revived, never as u64);
    assert_eq!(h[3].density_histogram[0], 0, "after resampling: {:?}", h[3]);
}

#[test]
fn seed_002_reinitialisation_revives_some_dead_latents() {
    let h = revival(DeadPolicy::Reinit {
        every: 20,
        window: 10,
        threshold: 1e-5,
    });
    let never = h[1].density_histogram[0];
    assert!(never >= 8, "{:?}", h[1]);
    assert_eq!(h[1].revived, never as u64);
    assert!(
        h[3].density_histogram[0] < never,
        "{:?} vs {:?}",
        h[3],
        h[1]
    );
}

#[test]
fn a_diverging_run_stops_with_a_typed_error_and_keeps_the_last_good_checkpoint() {
    let data = superposition(8, 16, 2.0, 1000, 2);
    let mut source = ActivationMatrix::new(data.activations.clone(), 0).unwrap();
    let mut cfg = TrainConfig::new(TrainArch::relu(1.0), 8, 16, 50);
    cfg.batch_size = 32;
    cfg.lr = 1e30;
    cfg.checkpoint_every = 1;
    let dir = tempfile::tempdir().unwrap();
    let mut trainer = Trainer::new(cfg, &mut source).unwrap();
    let opts = FitOptions {
        out_dir: Some(dir.path().to_path_buf()),
        ..FitOptions::default()
    };
    match trainer.fit(&mut source, opts) {
        Err(Error::NonFiniteLoss { step, checkpoint }) => {
            let path = checkpoint.expect("a checkpoint was written before the failure");
            let mut fresh = ActivationMatrix::new(data.activations, 0).unwrap();
            let resumed = Trainer::resume(&path, &mut fresh).unwrap();
            assert_eq!(resumed.step_count(), step - 1);
            assert!(
                resumed.to_sae().is_ok(),
                "the kept checkpoint holds finite weights"
            );
        }
        other => panic!("expected NonFiniteLoss, got {other:?}"),
    }
}

#[test]
fn a_finished_run_writes_a_saelens_sae_metrics_and_plots() {
    let data = superposition(16, 32, 2.0, 2000, 4);
    let mut source = ActivationMatrix::new(data.activations.clone(), 0).unwrap();
    for arch in [
        TrainArch::batch_topk(2),
        TrainArch::jumprelu(0.01),
        TrainArch::topk(2),
    ] {
        let mut cfg = TrainConfig::new(arch.clone(), 16, 32, 30);
        cfg.batch_size = 64;
        cfg.log_every = 10;
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = Trainer::new(cfg, &mut source).unwrap();
        let opts = FitOptions {
            out_dir: Some(dir.path().to_path_buf()),
            ..FitOptions::default()
        };
        let report = trainer.fit(&mut source, opts).unwrap();
        assert_eq!(report.history.len(), 3);
        let loaded = interp_sae::load(dir.path()).unwrap();
        let ours = trainer.to_sae().unwrap();
        let x = data.activations.slice(ndarray::s![..50, ..]);
        let (a, b) = (loaded.forward(x).unwrap(), ours.forward(x).unwrap());
        assert!((&a - &b).iter().all(|d| d.abs() < 1e-5), "{arch:?}");
        let lines = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        assert_eq!(lines.lines().count(), 3);
        for f in [
            "loss.png",
            "loss.svg",
            "density.png",
            "sparsity.svg",
            "sparsity.safetensors",
        ] {
            assert!(dir.path().join(f).metadata().unwrap().len() > 100, "{f}");
        }
        assert!(interp_sae::formats::saelens::load_sparsity(dir.path())
            .unwrap()
            .is_some());
    }
}

#[test]
fn bad_configs_and_data_are_typed_errors() {
    let mut source = ActivationMatrix::new(Array2::ones((10, 4)), 0).unwrap();
    let cases = [
        TrainConfig::new(TrainArch::topk(9), 4, 8, 10),
        TrainConfig::new(TrainArch::batch_topk(0), 4, 8, 10),
        TrainConfig::new(TrainArch::relu(-1.0), 4, 8, 10),
        TrainConfig::new(TrainArch::jumprelu(f32::NAN), 4, 8, 10),
        TrainConfig::new(TrainArch::topk(2), 4, 0, 10),
        TrainConfig::new(TrainArch::topk(2), 4, 8, 0),
        {
            let mut c = TrainConfig::new(TrainArch::topk(2), 4, 8, 10);
            c.lr = -1.0;
            c
        },
    ];
    for cfg in cases {
        assert!(
            matches!(
                Trainer::new(cfg.clone(), &mut source),
                Err(Error::TrainConfig { .. })
            ),
            "{cfg:?}"
        );
    }
    let wrong_width = TrainConfig::new(TrainArch::topk(2), 5, 8, 10);
    assert!(matches!(
        Trainer::new(wrong_width, &mut source),
        Err(Error::InputWidth {
            expected: 5,
            actual: 4
        })
    ));
    assert!(matches!(
        ActivationMatrix::new(Array2::zeros((0, 4)), 0),
        Err(Error::Data { .. })
    ));
    let mut nan = Array2::<f32>::ones((3, 4));
    nan[[1, 2]] = f32::NAN;
    assert!(matches!(
        ActivationMatrix::new(nan.clone(), 0),
        Err(Error::NonFinite { .. })
    ));
    let mut zeros = ActivationMatrix::new(Array2::zeros((10, 4)), 0).unwrap();
    assert!(matches!(
        Trainer::new(TrainConfig::new(TrainArch::topk(2), 4, 8, 10), &mut zeros),
        Err(Error::Data { .. })
    ));
    let mut trainer =
        Trainer::new(TrainConfig::new(TrainArch::topk(2), 4, 8, 10), &mut source).unwrap();
    assert!(matches!(
        trainer.step(nan.view()),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        trainer.step(Array2::ones((3, 5)).view()),
        Err(Error::InputWidth { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let not_a_checkpoint = dir.path().join("x.safetensors");
    interp_core::write_safetensors(&not_a_checkpoint, [("a", &[1][..], &[1.0f32][..])]).unwrap();
    assert!(matches!(
        Trainer::resume(&not_a_checkpoint, &mut source),
        Err(Error::Data { .. })
    ));
}

#[test]
fn activation_files_flatten_leading_dims_and_shuffle_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.safetensors");
    let values: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32).collect();
    interp_core::write_safetensors(
        &path,
        [
            ("blocks.0.hook_resid_pre", &[2, 3, 4][..], &values[..]),
            ("other", &[1][..], &[0.0][..]),
        ],
    )
    .unwrap();
    assert!(matches!(
        ActivationMatrix::from_safetensors(&path, None, 0),
        Err(Error::Data { .. })
    ));
    let mut a =
        ActivationMatrix::from_safetensors(&path, Some("blocks.0.hook_resid_pre"), 9).unwrap();
    assert_eq!(a.len(), 6);
    let mut first = Array2::zeros((4, 4));
    a.next_batch(first.view_mut()).unwrap();
    let pos = a.position();
    let mut next = Array2::zeros((5, 4));
    a.next_batch(next.view_mut()).unwrap();
    // Every row of an epoch is some input row, and an epoch visits each row once.
    let mut rows: Vec<f32> = first
        .rows()
        .into_iter()
        .chain(next.rows().into_iter().take(2))
        .map(|r| r[0])
        .collect();
    rows.sort_by(f32::total_cmp);
    assert_eq!(rows, vec![0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
    let mut b =
        ActivationMatrix::from_safetensors(&path, Some("blocks.0.hook_resid_pre"), 9).unwrap();
    b.seek(&pos).unwrap();
    let mut again = Array2::zeros((5, 4));
    b.next_batch(again.view_mut()).unwrap();
    assert_eq!(again, next);
}

#[test]
fn a_window_as_long_as_the_interval_counts_the_whole_interval() {
    let h = revival(DeadPolicy::Resample {
        every: 20,
        window: 20,
        threshold: 0.0,
        max_rounds: 1,
        sample_size: 256,
    });
    let never = h[1].density_histogram[0] as u64;
    assert!(h[1].revived > 0 && h[1].revived <= never, "{:?}", h[1]);
}
