//! The HTML viewer in a real headless browser (Debian's `chromium`): opened from the file
//! system, its script runs without console errors, builds the edge table, and selecting a node
//! (`#select=…`, as a click does) lists that node's neighbours; a screenshot is not blank.

use std::path::Path;
use std::process::Command;

use interp_flow::{export, Edge, FlowGraph};

const CHROMIUM: &str = "/usr/bin/chromium";

fn graph() -> FlowGraph {
    let e = |s: &str, t: &str, score| Edge {
        source: s.parse().unwrap(),
        target: t.parse().unwrap(),
        score,
    };
    FlowGraph::union([FlowGraph {
        nodes: Vec::new(),
        edges: vec![
            e("0/res/1", "1/res/2", 0.9),
            e("1/mlp/3", "1/res/2", 0.31),
            e("1/res/2", "2/res/7", 0.8),
        ],
    }])
}

fn chromium(args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian package `chromium` (.ci/run does)"
    );
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .output()
        .expect("chromium runs")
}

#[test]
fn viewer_renders_and_selects_a_node_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("graph.html");
    std::fs::write(&page, export::to_html(&graph(), "Flow graph of 1/res/2")).unwrap();
    let url = format!("file://{}#select=1/res/2", page.display());
    let out = chromium(&["--virtual-time-budget=2000", "--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("Uncaught"), "console errors:\n{log}");
    // Made by the script: the summary, one table row per edge, the neighbours of 1/res/2.
    assert!(dom.contains("4 nodes, 3 edges"), "{dom}");
    let rows = dom
        .split(r#"id="edge-rows">"#)
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap();
    assert_eq!(rows.matches("<tr><td>").count(), 3, "{dom}");
    assert!(
        dom.contains(r#"<h2 id="selected-id">1/res/2</h2>"#),
        "{dom}"
    );
    let incoming = dom
        .split(r#"class="incoming""#)
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    assert!(
        incoming.contains("0/res/1")
            && incoming.contains("1/mlp/3")
            && !incoming.contains("2/res/7")
    );
    let outgoing = dom
        .split(r#"class="outgoing""#)
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    assert!(outgoing.contains("2/res/7"));
    assert!(dom.contains(r#"class="node selected""#), "{dom}");

    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    chromium(&[&arg, "--window-size=1000,700", &url]);
    let img = image_pixels(&shot);
    let first = img[0];
    let differing = img.iter().filter(|&&p| p != first).count();
    assert!(
        differing > img.len() / 200,
        "the screenshot is blank ({differing} pixels differ)"
    );
    // Keep it for people looking at CI artifacts.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flow_viewer.png");
    std::fs::copy(&shot, keep).unwrap();
}

/// RGBA pixels of a PNG, as u32.
fn image_pixels(path: &Path) -> Vec<u32> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    bytes
        .chunks(step)
        .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | b as u32))
        .collect()
}
