//! The HTML viewer in a real headless browser (Debian's `chromium`, which `.ci/run` installs):
//! opened from the file system, its script runs without any console message, builds the edge
//! table, and selecting a node (`#select=…` dispatches a click on it) highlights it and lists
//! its neighbours with their cosines; a screenshot shows the drawing and the selection.
//!
//! Without Chromium the test fails (it does not skip): install the Debian package `chromium`.

use std::path::Path;

use interp_core::browser::{file_url, Chromium};

use interp_flow::{export, Edge, FlowGraph};

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
    let chromium = Chromium::find().expect("this test needs headless Chromium");
    let log = chromium.dump_dom(&file_url(&control)).unwrap().console;
    assert!(
        log.iter().any(|l| l.contains("control-error"))
            && log.iter().any(|l| l.contains("Uncaught ReferenceError")),
        "chromium does not report console messages, so the check below would see nothing: \
         {log:?}"
    );

    let g = graph();
    let page = d.join("graph.html");
    std::fs::write(&page, export::to_html(&g, "Flow graph of 1/res/2")).unwrap();
    let url = format!("{}#select=1/res/2", file_url(&page));
    let interp_core::browser::Page { dom, console } = chromium.dump_dom(&url).unwrap();
    assert_eq!(console, Vec::<String>::new(), "console messages");

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
    let console = chromium.screenshot(&url, &shot, 1200, 800).unwrap();
    assert_eq!(console, Vec::<String>::new(), "console messages");
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
