//! A self-contained HTML viewer (no CDN, no fetch; opens from the file system): the SVG
//! drawing, click a node to highlight it and list its incoming and outgoing edges in the
//! `#neighbors` panel, and a table of every edge. `#select=2/res/10` in the URL selects a node
//! on load.

use super::escape;
use super::svg::{body, layout};
use crate::graph::FlowGraph;

const SCRIPT: &str = r##"
const graph = JSON.parse(document.getElementById('graph-data').textContent);
const panel = document.getElementById('neighbors');
function row(e, other) {
  return '<li><a href="#select=' + other + '" data-go="' + other + '">' + other + '</a> ' +
    e.score.toFixed(3) + '</li>';
}
function select(id) {
  document.querySelectorAll('.node').forEach(n => n.classList.toggle('selected', n.dataset.id === id));
  document.querySelectorAll('.edge').forEach(e => e.classList.toggle('lit',
    e.dataset.source === id || e.dataset.target === id));
  const inc = graph.edges.filter(e => e.target === id);
  const out = graph.edges.filter(e => e.source === id);
  panel.innerHTML = '<h2 id="selected-id">' + id + '</h2>' +
    '<h3>from (predecessors)</h3><ul class="incoming">' + inc.map(e => row(e, e.source)).join('') + '</ul>' +
    '<h3>to (successors)</h3><ul class="outgoing">' + out.map(e => row(e, e.target)).join('') + '</ul>';
}
document.querySelectorAll('.node').forEach(n => n.addEventListener('click', () => select(n.dataset.id)));
panel.addEventListener('click', ev => { const go = ev.target.dataset && ev.target.dataset.go; if (go) select(go); });
const body = document.getElementById('edge-rows');
body.innerHTML = graph.edges.map(e => '<tr><td>' + e.source + '</td><td>' + e.target + '</td><td>' +
  e.score.toFixed(3) + '</td></tr>').join('');
document.getElementById('summary').textContent = graph.nodes.length + ' nodes, ' + graph.edges.length + ' edges';
function fromHash() { const m = location.hash.match(/select=([^&]+)/); if (m) select(decodeURIComponent(m[1])); }
window.addEventListener('hashchange', fromHash);
fromHash();
"##;

/// The graph as one self-contained HTML page titled `title`.
pub fn to_html(g: &FlowGraph, title: &str) -> String {
    let lay = layout(g);
    // `</` cannot close the script element inside JSON once `/` is escaped.
    let data = g.to_json().replace("</", "<\\/");
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body{{font-family:Helvetica,Arial,sans-serif;margin:0;display:flex;height:100vh}}
#view{{flex:1;overflow:auto;padding:8px}} #side{{width:320px;border-left:1px solid #ccc;padding:8px;overflow:auto}}
.node{{cursor:pointer}} .node.selected circle{{stroke:#d00;stroke-width:4}}
.edge.lit{{stroke:#d00;stroke-opacity:1}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ddd;padding:2px 6px}}
</style></head><body>
<div id="view"><h1>{t}</h1><p id="summary"></p>
<svg id="flow-graph" xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-size="11">{body}</svg>
<h2>Edges</h2><table><thead><tr><th>source</th><th>target</th><th>cosine</th></tr></thead><tbody id="edge-rows"></tbody></table></div>
<div id="side"><p>Click a node to see its neighbours.</p><div id="neighbors"></div></div>
<script type="application/json" id="graph-data">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        t = escape(title),
        w = lay.width,
        h = lay.height,
        body = body(g, &lay),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_is_self_contained_and_embeds_the_graph() {
        let g = super::super::sample_graph();
        let html = super::to_html(&g, "t");
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        assert!(html.contains(r#"data-id="1/res/2""#));
        assert!(html.contains("\"0/emb/5\""));
        assert!(html.contains(r#"id="neighbors""#));
    }
}
