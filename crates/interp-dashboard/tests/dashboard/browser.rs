//! The site in a real headless browser (Debian's `chromium`, which `.ci/run` installs),
//! opened from the file system: the index's script draws, sorts and filters the table, a
//! feature page shows its parts, no page logs anything to the console, and a screenshot is
//! not blank. Without Chromium the test fails (it does not skip).

use std::collections::BTreeMap;
use std::path::Path;

use interp_core::browser::{file_url, Chromium};
use interp_dashboard::{Dashboard, DashboardOptions, Explanations, FeatureSelection};

use super::common::{corpus, pass, world};

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
fn the_site_opens_sorts_filters_and_shows_a_feature_in_headless_chromium() {
    let (model, sae) = world();
    let dir = tempfile::tempdir().unwrap();
    let data = pass(&model, &sae, &corpus(dir.path(), 120));
    let top = FeatureSelection::Top(12);
    let ids = top.pick(&data);
    assert_eq!(ids.len(), 12);
    let (first, second) = (ids[0], ids[1]);
    let export = dir.path().join("explanations.json");
    std::fs::write(
        &export,
        format!(r#"[{{"modelId":"toy","layer":"2-res","index":"{first}","description":"planted <b>explanation</b>"}}]"#),
    )
    .unwrap();
    let opts = DashboardOptions {
        explanations: Some(Explanations::read(&export).unwrap()),
        flow_graphs: BTreeMap::from([(first, "flow/x.html".to_string())]),
        ..DashboardOptions::default()
    };
    let site = Dashboard::build(&model, &sae, &data, &top, &opts).unwrap();
    let out = dir.path().join("site");
    site.write(&out).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["features"].as_array().unwrap().len(), 12);
    for &f in &ids {
        assert!(out.join(format!("features/{f}.html")).exists());
    }

    let chromium = Chromium::find().expect("this test needs headless Chromium");
    // The console check sees console output: a page that logs an error is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><script>console.error('control-error'); missingFn();</script>",
    )
    .unwrap();
    let page = chromium.dump_dom(&file_url(&control)).unwrap();
    assert!(
        page.console.iter().any(|l| l.contains("control-error"))
            && page
                .console
                .iter()
                .any(|l| l.contains("Uncaught ReferenceError")),
        "chromium does not report console messages: {:?}",
        page.console
    );

    // Sorted by density, densest first: the rows' densities descend.
    let url = format!("{}#sort=density&desc=1", file_url(&out.join("index.html")));
    let page = chromium.dump_dom(&url).unwrap();
    assert_eq!(page.console, Vec::<String>::new(), "console messages");
    let rows = between(&page.dom, r#"<tbody id="rows">"#, "</tbody>");
    let order: Vec<usize> = attr_values(rows, "data-id")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(order.len(), 12, "{rows}");
    let density = |f: usize| data.density(data.get(f).unwrap());
    assert!(
        order.windows(2).all(|w| density(w[0]) >= density(w[1])),
        "{order:?}"
    );
    assert!(page
        .dom
        .contains(r#"<span id="count">12 of 12 features</span>"#));
    // Filtered by the explanation's text: one row, linking to its page.
    let url = format!("{}#q=planted", file_url(&out.join("index.html")));
    let page = chromium.dump_dom(&url).unwrap();
    let rows = between(&page.dom, r#"<tbody id="rows">"#, "</tbody>");
    assert_eq!(attr_values(rows, "data-id"), [first.to_string()]);
    assert!(
        rows.contains(&format!(r#"href="features/{first}.html""#)),
        "{rows}"
    );

    // A feature page: its parts, from the file system, without console messages.
    let feature = out.join(format!("features/{first}.html"));
    let page = chromium.dump_dom(&file_url(&feature)).unwrap();
    assert_eq!(page.console, Vec::<String>::new(), "console messages");
    let dom = &page.dom;
    assert!(
        dom.contains(&format!(r#"data-feature="{first}""#)),
        "the page's script did not run"
    );
    assert!(dom.contains(&format!("<h1 id=\"feature-title\">Feature {first}</h1>")));
    assert!(dom.contains("<p id=\"explanation\">planted &lt;b&gt;explanation&lt;/b&gt;</p>"));
    assert!(dom.contains(r#"<a id="flow-link" href="../flow/x.html">"#));
    assert!(dom.contains(&format!(r#"<a id="next" href="{second}.html">"#)));
    let stats = data.get(first).unwrap();
    let tops = between(dom, r#"<section id="top-examples">"#, "</section>");
    assert_eq!(
        tops.matches(r#"<div class="example""#).count(),
        stats.top.len()
    );
    assert_eq!(tops.matches(r#"class="tok at""#).count(), stats.top.len());
    let acts: Vec<f32> = attr_values(tops, "data-activation")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(acts[0], stats.max);
    assert!(acts.windows(2).all(|w| w[0] >= w[1]));
    let bins = between(dom, r#"<svg id="histogram""#, "</svg>");
    let counts: u64 = attr_values(bins, "data-count")
        .iter()
        .map(|s| s.parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, stats.fired);
    let promoted = between(dom, r#"<table id="logits-promoted">"#, "</table>");
    assert_eq!(promoted.matches("<tr>").count(), 10);
    let near = between(dom, r#"<table id="neighbours">"#, "</table>");
    assert_eq!(near.matches("<tr>").count(), 1 + 8);
    assert!(between(dom, r#"<section id="bands">"#, "</section>").contains(r#"class="band""#));

    // What it looks like: not blank, and the activation shading drawn.
    let shot = dir.path().join("feature.png");
    let console = chromium
        .screenshot(&file_url(&feature), &shot, 1200, 900)
        .unwrap();
    assert_eq!(console, Vec::<String>::new());
    let px = rgb_pixels(&shot);
    let background = px.iter().filter(|p| **p == px[0]).count();
    assert!(background < px.len() * 95 / 100, "the screenshot is blank");
    let orange = px
        .iter()
        .filter(|p| p[0] > 200 && p[1] > 100 && p[1] < 200 && p[2] < 120)
        .count();
    assert!(
        orange > 200,
        "no activation shading or histogram bars drawn ({orange} orange pixels)"
    );
    std::fs::copy(
        &shot,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard_feature.png"),
    )
    .unwrap();
}

/// RGB pixels of a PNG.
fn rgb_pixels(path: &Path) -> Vec<[u8; 3]> {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}
