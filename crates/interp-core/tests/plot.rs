//! The `plot` feature: every chart kind to PNG and SVG, and its typed errors on bad input.
//!
//! Set `PLOT_TEST_OUT=<dir>` to keep the rendered files there for a look.
#![cfg(feature = "plot")]

use std::path::{Path, PathBuf};

use interp_core::plot::{bar_chart, heatmap, histogram, line_chart, PlotError, Series};

/// A scratch directory, or `$PLOT_TEST_OUT` when set.
struct Out {
    _tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
}

impl Out {
    fn new() -> Self {
        match std::env::var_os("PLOT_TEST_OUT") {
            Some(d) => {
                std::fs::create_dir_all(&d).unwrap();
                Out {
                    _tmp: None,
                    dir: d.into(),
                }
            }
            None => {
                let t = tempfile::tempdir().unwrap();
                let dir = t.path().to_path_buf();
                Out { _tmp: Some(t), dir }
            }
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// PNG width and height, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 1000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The SVG text, after checking it is one and contains each of `texts`.
fn svg_with(path: &Path, texts: &[&str]) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.contains("<svg"), "{} is not an SVG", path.display());
    assert!(svg.trim_end().ends_with("</svg>"));
    for t in texts {
        assert!(svg.contains(t), "{} lacks {t:?}", path.display());
    }
    svg
}

/// The contents of the SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// No temporary files left next to the outputs.
fn no_temporaries(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left behind: {name}");
    }
}

fn curves() -> Vec<Series> {
    let train = (0..200)
        .map(|s| (s as f64, 2.0 / (1.0 + 0.05 * s as f64) + 0.01))
        .collect();
    let val = (0..200)
        .step_by(20)
        .map(|s| (s as f64, 2.2 / (1.0 + 0.04 * s as f64) + 0.02))
        .collect();
    vec![Series::new("train", train), Series::new("validation", val)]
}

#[test]
fn line_chart_png_and_svg() {
    let out = Out::new();
    for log_y in [false, true] {
        let png = out.path(&format!("line_log{log_y}.png"));
        line_chart(&png, "SAE loss", "step", "MSE", &curves(), log_y).unwrap();
        assert_eq!(png_size(&png), (900, 600));
        let svg = out.path(&format!("line_log{log_y}.svg"));
        line_chart(&svg, "SAE loss", "step", "MSE", &curves(), log_y).unwrap();
        svg_with(&svg, &["SAE loss", "train", "validation", "step", "MSE"]);
    }
    no_temporaries(&out.dir);
}

#[test]
fn line_chart_skips_non_finite_and_non_positive_log_values() {
    let out = Out::new();
    let gappy = Series::new(
        "gappy",
        vec![
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 0.5),
            (3.0, 0.0),
            (4.0, -1.0),
            (f64::INFINITY, 1.0),
            (5.0, 0.25),
            (6.0, 0.2),
        ],
    );
    for log_y in [false, true] {
        let p = out.path(&format!("gappy_log{log_y}.png"));
        line_chart(&p, "gaps", "x", "y", std::slice::from_ref(&gappy), log_y).unwrap();
        png_size(&p);
    }
    // Nothing drawable left.
    let nan = Series::new("nan", vec![(0.0, f64::NAN), (f64::NAN, 1.0)]);
    let err = line_chart(&out.path("nan.png"), "t", "x", "y", &[nan], false).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let neg = Series::new("neg", vec![(0.0, -1.0), (1.0, 0.0)]);
    let err = line_chart(
        &out.path("neg.png"),
        "t",
        "x",
        "y",
        std::slice::from_ref(&neg),
        true,
    )
    .unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    line_chart(&out.path("neg.png"), "t", "x", "y", &[neg], false).unwrap();
    let err = line_chart(&out.path("none.png"), "t", "x", "y", &[], false).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let empty = Series::new("empty", vec![]);
    let err = line_chart(&out.path("empty.svg"), "t", "x", "y", &[empty], false).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    assert!(!out.path("empty.svg").exists());
}

#[test]
fn line_chart_constant_and_single_point() {
    let out = Out::new();
    let flat = Series::new("flat", (0..10).map(|i| (i as f64, 3.0)).collect());
    let dot = Series::new("dot", vec![(5.0, 5.0)]);
    let zero = Series::new("", vec![(0.0, 0.0), (0.0, 0.0)]);
    for (i, s) in [flat, dot, zero].into_iter().enumerate() {
        for log_y in [false, true] {
            let p = out.path(&format!("const{i}_{log_y}.svg"));
            match line_chart(&p, "constant", "x", "y", std::slice::from_ref(&s), log_y) {
                Ok(()) => {
                    svg_with(&p, &["constant"]);
                }
                // Only the all-zero series has nothing to draw on a log axis.
                Err(PlotError::EmptyData { .. }) => assert!(i == 2 && log_y),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn histogram_png_and_svg() {
    let out = Out::new();
    // Two groups of very different sizes, one with NaNs mixed in.
    let a: Vec<f64> = (0..5000)
        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
        .collect();
    let mut b: Vec<f64> = (0..300)
        .map(|i| 0.7 + 0.2 * (((i * 31) % 100) as f64 / 100.0 - 0.5))
        .collect();
    b.extend([f64::NAN, f64::INFINITY]);
    let groups = vec![("uniform".to_string(), a), ("peaked".to_string(), b)];
    let png = out.path("hist.png");
    histogram(&png, "Cosine similarity", "cos", &groups, 40).unwrap();
    assert_eq!(png_size(&png), (900, 600));
    let svg = out.path("hist.svg");
    histogram(&svg, "Cosine similarity", "cos", &groups, 40).unwrap();
    // Non-finite values are not counted.
    svg_with(
        &svg,
        &[
            "Cosine similarity",
            "uniform (n=5000)",
            "peaked (n=300)",
            "density",
        ],
    );
    no_temporaries(&out.dir);
}

#[test]
fn histogram_bad_input() {
    let out = Out::new();
    let p = out.path("h.png");
    let g = |v: Vec<f64>| vec![("g".to_string(), v)];
    let err = histogram(&p, "t", "x", &[], 10).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let err = histogram(&p, "t", "x", &g(vec![]), 10).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let err = histogram(&p, "t", "x", &g(vec![f64::NAN, f64::NEG_INFINITY]), 10).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let err = histogram(&p, "t", "x", &g(vec![1.0]), 0).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    let err = histogram(&p, "t", "x", &g(vec![1.0]), usize::MAX).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    assert!(!p.exists());
    // Constant data, a single value, an empty group next to a full one.
    histogram(&p, "t", "x", &g(vec![2.5; 100]), 20).unwrap();
    histogram(&p, "t", "x", &g(vec![0.0]), 1).unwrap();
    let mixed = vec![
        ("full".to_string(), vec![1.0, 2.0, 3.0]),
        ("none".to_string(), vec![]),
    ];
    let svg = out.path("mixed.svg");
    histogram(&svg, "t", "x", &mixed, 5).unwrap();
    svg_with(&svg, &["full (n=3)", "none (n=0)"]);
}

fn labels(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn heatmap_png_and_svg() {
    let out = Out::new();
    let (rows, cols) = (8, 12);
    let values: Vec<f32> = (0..rows * cols)
        .map(|k| ((k / cols) as f32 - 3.5) * ((k % cols) as f32 - 5.5) / 20.0)
        .collect();
    let (rl, cl) = (labels("layer ", rows), labels("feature_", cols));
    let png = out.path("heat.png");
    heatmap(&png, "Decoder cosine", &rl, &cl, &values, rows, cols, None).unwrap();
    let (w, h) = png_size(&png);
    assert!(
        (400..=2000).contains(&w) && (300..=2000).contains(&h),
        "{w}x{h}"
    );
    let svg = out.path("heat.svg");
    heatmap(&svg, "Decoder cosine", &rl, &cl, &values, rows, cols, None).unwrap();
    svg_with(
        &svg,
        &[
            "Decoder cosine",
            "layer 0",
            "layer 7",
            "feature_0",
            "feature_11",
        ],
    );
    // Indices when no labels; an explicit range.
    let svg = out.path("heat_idx.svg");
    heatmap(
        &svg,
        "indices",
        &[],
        &[],
        &values,
        rows,
        cols,
        Some((-1.0, 1.0)),
    )
    .unwrap();
    let texts = svg_texts(&svg_with(&svg, &["indices"]));
    for index in ["0", "7", "11"] {
        assert!(
            texts.iter().any(|t| t == index),
            "no label {index} in {texts:?}"
        );
    }
    no_temporaries(&out.dir);
}

#[test]
fn heatmap_sizes_stay_sane() {
    let out = Out::new();
    for (rows, cols) in [(1, 1), (1, 64), (64, 64), (100, 3), (700, 300)] {
        let values: Vec<f32> = (0..rows * cols).map(|k| (k % 17) as f32 - 8.0).collect();
        let p = out.path(&format!("heat_{rows}x{cols}.png"));
        heatmap(&p, "size", &[], &[], &values, rows, cols, None).unwrap();
        let (w, h) = png_size(&p);
        assert!(
            (300..=2000).contains(&w) && (200..=2000).contains(&h),
            "{rows}x{cols}: {w}x{h}"
        );
    }
}

#[test]
fn heatmap_bad_input_and_special_values() {
    let out = Out::new();
    let p = out.path("hm.png");
    let v = vec![0.5f32; 6];
    let err = heatmap(&p, "t", &[], &[], &v, 2, 4, None).unwrap_err();
    assert!(
        matches!(
            err,
            PlotError::Shape {
                expected: 8,
                actual: 6,
                ..
            }
        ),
        "{err}"
    );
    let err = heatmap(&p, "t", &labels("r", 3), &[], &v, 2, 3, None).unwrap_err();
    assert!(
        matches!(
            err,
            PlotError::Shape {
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = heatmap(&p, "t", &[], &labels("c", 2), &v, 2, 3, None).unwrap_err();
    assert!(
        matches!(
            err,
            PlotError::Shape {
                expected: 3,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = heatmap(&p, "t", &[], &[], &[], 0, 3, None).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let err = heatmap(&p, "t", &[], &[], &v, 2, 3, Some((1.0, 1.0))).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    let err = heatmap(&p, "t", &[], &[], &v, 2, 3, Some((f32::NAN, 1.0))).unwrap_err();
    assert!(matches!(err, PlotError::NonFinite { .. }), "{err}");
    let err = heatmap(&p, "t", &[], &[], &v, usize::MAX, 2, None).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    assert!(!p.exists());
    // Constant, all-zero, all-NaN and partly-NaN matrices are drawn.
    let cases: [(&str, Vec<f32>); 4] = [
        ("const", vec![0.5; 6]),
        ("zero", vec![0.0; 6]),
        ("allnan", vec![f32::NAN; 6]),
        (
            "somenan",
            vec![1.0, f32::NAN, -2.0, f32::INFINITY, 0.0, 3.0],
        ),
    ];
    for (name, values) in cases {
        let p = out.path(&format!("hm_{name}.png"));
        heatmap(&p, name, &[], &[], &values, 2, 3, None).unwrap();
        png_size(&p);
    }
}

#[test]
fn bar_chart_png_and_svg() {
    let out = Out::new();
    let bars: Vec<(String, f64)> = [
        ("dead", 12.0),
        ("dense", 3.0),
        ("alive", 985.0),
        ("negative", -40.0),
        ("missing", f64::NAN),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let png = out.path("bars.png");
    bar_chart(&png, "Latent counts", "count", &bars).unwrap();
    let (w, h) = png_size(&png);
    assert_eq!(w, 900);
    assert!((600..=900).contains(&h), "{h}");
    let svg = out.path("bars.svg");
    bar_chart(&svg, "Latent counts", "count", &bars).unwrap();
    svg_with(
        &svg,
        &[
            "Latent counts",
            "count",
            "dead",
            "alive",
            "negative",
            "missing",
            "985",
        ],
    );
    // Many bars with long labels.
    let many: Vec<(String, f64)> = (0..200)
        .map(|i| (format!("a rather long feature name {i}"), (i as f64).sin()))
        .collect();
    let p = out.path("bars_many.png");
    bar_chart(&p, "many", "sin", &many).unwrap();
    png_size(&p);
    no_temporaries(&out.dir);
}

#[test]
fn bar_chart_bad_input_and_constant() {
    let out = Out::new();
    let p = out.path("b.png");
    let err = bar_chart(&p, "t", "y", &[]).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    let err = bar_chart(&p, "t", "y", &[("x".into(), f64::NAN)]).unwrap_err();
    assert!(matches!(err, PlotError::EmptyData { .. }), "{err}");
    assert!(!p.exists());
    bar_chart(&p, "t", "y", &[("a".into(), 0.0), ("b".into(), 0.0)]).unwrap();
    bar_chart(&p, "t", "y", &[("a".into(), 7.0), ("b".into(), 7.0)]).unwrap();
    png_size(&p);
}

#[test]
fn format_follows_the_extension() {
    let out = Out::new();
    let s = [Series::new("s", vec![(0.0, 1.0), (1.0, 2.0)])];
    for name in ["plot.jpg", "plot", "plot.svg.gz", "plot."] {
        let p = out.path(name);
        let err = line_chart(&p, "t", "x", "y", &s, false).unwrap_err();
        assert!(
            matches!(&err, PlotError::UnsupportedExtension { path } if path == &p),
            "{err}"
        );
        let err = histogram(&p, "t", "x", &[("g".into(), vec![1.0])], 3).unwrap_err();
        assert!(
            matches!(err, PlotError::UnsupportedExtension { .. }),
            "{err}"
        );
        let err = heatmap(&p, "t", &[], &[], &[1.0], 1, 1, None).unwrap_err();
        assert!(
            matches!(err, PlotError::UnsupportedExtension { .. }),
            "{err}"
        );
        let err = bar_chart(&p, "t", "y", &[("a".into(), 1.0)]).unwrap_err();
        assert!(
            matches!(err, PlotError::UnsupportedExtension { .. }),
            "{err}"
        );
        assert!(!p.exists());
    }
    // Case-insensitive; missing directories are created; existing files are replaced.
    let p = out.path("nested/deeper/UPPER.PNG");
    line_chart(&p, "t", "x", "y", &s, false).unwrap();
    png_size(&p);
    let p = out.path("nested/Upper.Svg");
    line_chart(&p, "first", "x", "y", &s, false).unwrap();
    line_chart(&p, "second", "x", "y", &s, false).unwrap();
    assert!(!svg_with(&p, &["second"]).contains("first"));
    no_temporaries(&out.path("nested"));
}

#[test]
fn errors_display() {
    let e = PlotError::UnsupportedExtension {
        path: "a.jpg".into(),
    };
    assert!(e.to_string().contains("a.jpg"));
    let e = PlotError::EmptyData {
        what: "series".into(),
    };
    assert!(e.to_string().contains("series"));
}

/// Data whose span overflows f64 is a typed error (plotters would loop forever placing ticks on
/// an infinite axis); huge, tiny and subnormal values that fit are drawn.
#[test]
fn extreme_values() {
    let out = Out::new();
    let overflow = [Series::new("wild", vec![(-f64::MAX, 1.0), (f64::MAX, 2.0)])];
    for log_y in [false, true] {
        let err = line_chart(&out.path("wild.png"), "w", "x", "y", &overflow, log_y).unwrap_err();
        assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    }
    let groups = vec![("wild".to_string(), vec![-f64::MAX, f64::MAX, 0.0])];
    let err = histogram(&out.path("wild.png"), "w", "x", &groups, 10).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    let bars = vec![("a".to_string(), f64::MAX), ("b".to_string(), -f64::MAX)];
    let err = bar_chart(&out.path("wild.svg"), "w", "y", &bars).unwrap_err();
    assert!(matches!(err, PlotError::InvalidArgument { .. }), "{err}");
    assert!(!out.path("wild.png").exists() && !out.path("wild.svg").exists());

    let fits = [
        vec![(0.0, f64::MIN_POSITIVE), (1.0, 5e-324), (2.0, 1e300)],
        vec![(-1.7e308, 1.0), (0.0, -1.7e308)],
        vec![(1e15, 1.0), (1e15 + 1.0, 1.0 + 1e-12)],
        vec![(1e17, 2.0), (1e17 + 16.0, 2.5)],
        vec![(f64::MAX, f64::MAX)],
    ];
    for (i, points) in fits.into_iter().enumerate() {
        for log_y in [false, true] {
            for ext in ["png", "svg"] {
                let p = out.path(&format!("fits{i}_{log_y}.{ext}"));
                let s = [Series::new("wild", points.clone())];
                if let Err(e) = line_chart(&p, "wild", "x", "y", &s, log_y) {
                    panic!("case {i} log_y={log_y}: {e}");
                }
            }
        }
    }
    let groups = vec![("big".to_string(), vec![1e300, -1e300, 5e-324])];
    histogram(&out.path("big_hist.png"), "big", "x", &groups, 10).unwrap();
    let bars = vec![("a".to_string(), 1e300), ("b".to_string(), -1e300)];
    bar_chart(&out.path("big_bars.svg"), "big", "y", &bars).unwrap();
    let values = [f32::MAX, f32::MIN, 0.0, 1e-40];
    heatmap(
        &out.path("big_heat.png"),
        "big",
        &[],
        &[],
        &values,
        2,
        2,
        None,
    )
    .unwrap();
}
