//! The HTML viewer in a real headless browser (Debian's `chromium`, which `.ci/run` installs):
//! opened from the file system, its script runs without any console message, builds the edge
//! table, and selecting a node (`#select=…` dispatches a click on it) highlights it and lists
//! its neighbours with their cosines; a screenshot shows the drawing and the selection.
//!
//! Without Chromium the test fails (it does not skip): install the Debian package `chromium`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use interp_flow::{export, Edge, FlowGraph};

/// How long one Chromium run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn graph() -> FlowGraph {
    let e = |s: &str, t: &str, score| Edge {
        source: s.parse().unwrap(),
        target: t.parse().unwrap(),
        score,
    };
    FlowGraph::union([FlowGraph {
        nodes: Vec::new(),
        edges: vec![
            e("0/emb/5", "0/res/1", 0.7),
            e("0/res/1", "1/res/2", 0.9),
            e("1/mlp/3", "1/res/2", 0.31),
            e("1/att/4", "1/res/2", 0.22),
            e("1/res/2", "2/res/7", 0.8),
            e("2/mlp/8", "2/res/7", 0.4),
        ],
    }])
}

fn chromium_path() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: this test needs headless Chromium — install the Debian package \
         `chromium` (`apt-get install -y chromium`; .ci/run does), or point CHROMIUM at a binary",
        path.display()
    );
    path
}

/// Runs headless Chromium with its own profile in `dir`; returns (stdout, stderr).
fn chromium(dir: &Path, name: &str, args: &[&str]) -> (String, String) {
    let (out, err) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let mut child = Command::new(chromium_path())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("{name}.profile")).display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    );
    assert!(status.success(), "chromium {args:?}: {status}\n{err}");
    (out, err)
}

/// The page's console messages (uncaught errors included) as Chromium logs them to stderr:
/// `[…:INFO:CONSOLE:12] "message", source: file:///… (12)`.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// The text between `start` (first occurrence) and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in\n{s}"))
        + start.len();
    let rest = &s[from..];
    &rest[..rest
        .find(end)
        .unwrap_or_else(|| panic!("no {end} after {start}"))]
}

/// Every value of attribute `name` in `s`, in order.
fn attr_values<'a>(s: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=\"");
    s.match_indices(&key)
        .map(|(i, _)| {
            let v = &s[i + key.len()..];
            &v[..v.find('"').unwrap()]
        })
        .collect()
}

#[test]
fn viewer_renders_and_selects_a_node_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The console check sees console output: a page that logs an error is caught.
    let control = d.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><p>x</p><script>console.error('control-error'); missingFn();</script>",
    )
    .unwrap();
    let (_, log) = chromium(
        d,
        "control",
        &["--dump-dom", &format!("file://{}", control.display())],
    );
    let lines = console_lines(&log);
    assert!(
        lines.iter().any(|l| l.contains("control-error"))
            && lines.iter().any(|l| l.contains("Uncaught ReferenceError")),
        "chromium's stderr does not show console messages, so the check below would see \
         nothing:\n{log}"
    );

    let g = graph();
    let page = d.join("graph.html");
    std::fs::write(&page, export::to_html(&g, "Flow graph of 1/res/2")).unwrap();
    let url = format!("file://{}#select=1/res/2", page.display());
    let (dom, log) = chromium(d, "dom", &["--dump-dom", &url]);
    assert_eq!(console_lines(&log), Vec::<&str>::new(), "console messages");

    // Made by the script from the embedded JSON: the summary and one table row per edge.
    assert!(
        dom.contains(r#"<p id="summary">7 nodes, 6 edges</p>"#),
        "{dom}"
    );
    let rows = between(&dom, r#"<tbody id="edge-rows">"#, "</tbody>");
    assert_eq!(rows.matches("<tr ").count(), g.edges.len(), "{rows}");
    assert_eq!(attr_values(rows, "data-target").len(), g.edges.len());

    // The selection, made by a click on the node: its neighbours, strongest first.
    let panel = between(&dom, r#"<div id="neighbors">"#, "</div>");
    assert!(
        panel.contains(r#"<h2 id="selected-id">1/res/2</h2>"#),
        "{panel}"
    );
    let incoming = between(panel, r#"<ul class="incoming">"#, "</ul>");
    assert_eq!(
        attr_values(incoming, "data-id"),
        ["0/res/1", "1/mlp/3", "1/att/4"]
    );
    assert_eq!(
        attr_values(incoming, "data-score"),
        ["0.900", "0.310", "0.220"]
    );
    let outgoing = between(panel, r#"<ul class="outgoing">"#, "</ul>");
    assert_eq!(attr_values(outgoing, "data-id"), ["2/res/7"]);
    assert_eq!(attr_values(outgoing, "data-score"), ["0.800"]);
    // Highlighted in the drawing: the node, its 4 edges; nodes not adjacent dimmed.
    let svg = between(&dom, r#"<svg id="flow-graph""#, "</svg>");
    assert!(
        svg.contains(r#"<g class="node selected" data-id="1/res/2""#),
        "{svg}"
    );
    assert_eq!(svg.matches(r#"class="edge lit""#).count(), 4, "{svg}");
    for far in ["0/emb/5", "2/mlp/8"] {
        assert!(
            svg.contains(&format!(r#"<g class="node dim" data-id="{far}""#)),
            "{far}"
        );
    }
    assert!(svg.contains(r#"<g class="node" data-id="0/res/1""#));
    assert_eq!(rows.matches(r#" class="lit""#).count(), 4, "{rows}");

    // What it looks like: not blank, the residual nodes' blue and the selection's red drawn.
    let shot = d.join("shot.png");
    let (_, log) = chromium(
        d,
        "shot",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,800",
            &url,
        ],
    );
    assert_eq!(console_lines(&log), Vec::<&str>::new(), "console messages");
    let (w, h, px) = rgb_pixels(&shot);
    assert_eq!((w, h), (1200, 800));
    let near = |c: [u8; 3]| {
        px.iter()
            .filter(|p| p.iter().zip(c).all(|(&a, b)| a.abs_diff(b) <= 8))
            .count()
    };
    let background = near(px[0]);
    assert!(
        background < px.len() * 97 / 100,
        "the screenshot is blank ({background} of {} pixels are the background)",
        px.len()
    );
    assert!(
        near([0x00, 0x72, 0xb2]) > 500,
        "no residual-blue nodes drawn"
    );
    assert!(near([0xdd, 0x00, 0x00]) > 50, "no red selection drawn");
    // Kept for people looking at the test's output.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flow_viewer.png");
    std::fs::copy(&shot, keep).unwrap();
}

/// Width, height and RGB pixels of a PNG.
fn rgb_pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Indexed => unreachable!("EXPAND turns palettes into RGB"),
    };
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| {
            if step >= 3 {
                [c[0], c[1], c[2]]
            } else {
                [c[0]; 3]
            }
        })
        .collect();
    (info.width, info.height, px)
}
