//! A self-contained HTML viewer.

use super::svg::svg_element;
use super::{complete, escape};
use crate::graph::FlowGraph;

const STYLE: &str = r#"
body{font-family:Helvetica,Arial,sans-serif;margin:0;display:flex;height:100vh;color:#222}
#view{flex:1;overflow:auto;padding:8px 12px}
#side{width:340px;border-left:1px solid #ccc;padding:8px 12px;overflow:auto;background:#fafafa}
h1{font-size:18px;margin:4px 0} h2{font-size:15px;margin:8px 0 4px} h3{font-size:13px;margin:10px 0 2px}
#summary{color:#555;margin:2px 0 8px}
.node{cursor:pointer} .node.selected circle{stroke:#d00;stroke-width:4}
.node.dim,.edge.dim,.edge-label.dim{opacity:.18}
.edge.lit{stroke:#d00;stroke-opacity:1}
#neighbors ul{list-style:none;padding-left:0;margin:2px 0} #neighbors li{padding:1px 0}
#neighbors .score{font-variant-numeric:tabular-nums;color:#555;margin-left:6px}
#neighbors .none{color:#888;font-style:italic}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:2px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.lit td{background:#fde7e7}
a{color:#0057a8;text-decoration:none} a:hover{text-decoration:underline}
"#;

const SCRIPT: &str = r##"
(function () {
  'use strict';
  const graph = JSON.parse(document.getElementById('graph-data').textContent);
  const panel = document.getElementById('neighbors');
  const fmt = s => (typeof s === 'number' ? s.toFixed(3) : 'NaN');
  const num = s => (typeof s === 'number' ? s : -Infinity);
  const el = (tag, props, kids) => {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    (kids || []).forEach(k => e.append(k));
    return e;
  };
  const link = id => el('a', { href: '#select=' + id, textContent: id, className: 'node-link' });
  const nodeEls = new Map();
  document.querySelectorAll('#flow-graph .node').forEach(n => nodeEls.set(n.dataset.id, n));

  function list(cls, edges, other) {
    const ul = el('ul', { className: cls });
    if (!edges.length) ul.append(el('li', { className: 'none', textContent: 'none' }));
    edges.forEach(e => {
      const li = el('li', { className: 'neighbor' }, [link(other(e)),
        el('span', { className: 'score', textContent: fmt(e.score) })]);
      li.dataset.id = other(e);
      li.dataset.score = fmt(e.score);
      ul.append(li);
    });
    return ul;
  }

  function select(id) {
    const node = graph.nodes.find(n => n.id === id);
    if (!node) {
      panel.replaceChildren(el('p', { className: 'none', textContent: 'No node ' + id + ' in this graph.' }));
      return;
    }
    const inc = graph.edges.filter(e => e.target === id).sort((a, b) => num(b.score) - num(a.score));
    const out = graph.edges.filter(e => e.source === id).sort((a, b) => num(b.score) - num(a.score));
    const near = new Set([id, ...inc.map(e => e.source), ...out.map(e => e.target)]);
    nodeEls.forEach((n, nid) => {
      n.classList.toggle('selected', nid === id);
      n.classList.toggle('dim', !near.has(nid));
    });
    document.querySelectorAll('#flow-graph .edge, #flow-graph .edge-label').forEach(e => {
      const on = e.dataset.source === id || e.dataset.target === id;
      e.classList.toggle('lit', on && e.classList.contains('edge'));
      e.classList.toggle('dim', !on);
    });
    document.querySelectorAll('#edge-rows tr').forEach(r =>
      r.classList.toggle('lit', r.dataset.source === id || r.dataset.target === id));
    const h = el('h2', { id: 'selected-id', textContent: id });
    const about = el('p', { textContent: 'layer ' + node.layer + ', ' + node.module + ', feature ' + node.feature });
    panel.replaceChildren(h, about,
      el('h3', { textContent: 'incoming (predecessors): ' + inc.length }), list('incoming', inc, e => e.source),
      el('h3', { textContent: 'outgoing (successors): ' + out.length }), list('outgoing', out, e => e.target));
  }

  function clear() {
    nodeEls.forEach(n => n.classList.remove('selected', 'dim'));
    document.querySelectorAll('#flow-graph .edge, #flow-graph .edge-label, #edge-rows tr')
      .forEach(e => e.classList.remove('lit', 'dim'));
    panel.replaceChildren();
  }

  nodeEls.forEach((n, id) => n.addEventListener('click', () => {
    select(id);
    if (location.hash !== '#select=' + id) location.hash = 'select=' + id;
  }));

  const rows = document.getElementById('edge-rows');
  graph.edges.forEach(e => {
    const tr = el('tr', {}, [el('td', {}, [link(e.source)]), el('td', {}, [link(e.target)]),
      el('td', { className: 'num', textContent: fmt(e.score) })]);
    tr.dataset.source = e.source;
    tr.dataset.target = e.target;
    rows.append(tr);
  });
  document.getElementById('summary').textContent =
    graph.nodes.length + ' nodes, ' + graph.edges.length + ' edges';

  // `#select=2/res/10` selects a node (by a click on it when it is drawn).
  function fromHash() {
    const m = location.hash.match(/select=([^&]+)/);
    if (!m) { clear(); return; }
    const id = decodeURIComponent(m[1]);
    const n = nodeEls.get(id);
    if (n) n.dispatchEvent(new MouseEvent('click', { bubbles: true })); else select(id);
  }
  window.addEventListener('hashchange', fromHash);
  document.addEventListener('keydown', ev => { if (ev.key === 'Escape') location.hash = ''; });
  fromHash();
})();
"##;

/// The graph's JSON, safe inside a `<script>` element: `<`, `>` and `&` (which JSON has only
/// inside strings) become `\u003c`, `\u003e`, `\u0026`, so no `</script>` or `<!--` can appear.
fn script_json(g: &FlowGraph) -> String {
    g.to_json()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The graph as one self-contained HTML page titled `title`: no external resources (inline CSS,
/// script and data), so it works opened straight from the file system.
///
/// The page shows the [`super::to_svg`] drawing as `<svg id="flow-graph">` (nodes
/// `<g class="node" data-id="2/res/10">`, edges `class="edge"` with their cosine as width,
/// opacity and label) and a table of every edge (`#edge-rows`, built by the script from the
/// embedded graph JSON, `<script type="application/json" id="graph-data">`). Clicking a node
/// highlights it with its edges, dims the rest, and lists its incoming and outgoing edges with
/// their cosines (strongest first) in the `#neighbors` panel (`ul.incoming`, `ul.outgoing`).
/// The URL fragment `#select=2/res/10` selects a node on load, and follows clicks; Escape
/// clears the selection.
pub fn to_html(g: &FlowGraph, title: &str) -> String {
    let g = complete(g);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{t}</title>
<style>{STYLE}</style></head><body>
<div id="view"><h1>{t}</h1><p id="summary"></p>
{svg}
<h2>Edges</h2>
<table id="edge-table"><thead><tr><th>source</th><th>target</th><th>cosine</th></tr></thead><tbody id="edge-rows"></tbody></table></div>
<div id="side"><p>Click a node to see its neighbours.</p><div id="neighbors"></div></div>
<script type="application/json" id="graph-data">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        t = escape(title),
        svg = svg_element(&g, None, Some("flow-graph")),
        data = script_json(&g),
    )
}

#[cfg(test)]
mod tests {
    use super::super::sample_graph;
    use super::*;

    #[test]
    fn html_is_self_contained_and_embeds_the_graph() {
        let g = sample_graph();
        let html = to_html(&g, "Flow <graph> & co");
        // No resource loads from the network (the SVG namespace is a name, not a load).
        let without_ns = html.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
        for bad in [
            "http://", "https://", "src=", "@import", "url(http", "fetch(",
        ] {
            assert!(!without_ns.contains(bad), "{bad}");
        }
        assert!(html.contains(r#"<svg id="flow-graph""#));
        for n in &g.nodes {
            assert!(html.contains(&format!(r#"class="node" data-id="{}""#, n.id)));
        }
        assert!(html.contains(r#"id="neighbors""#) && html.contains(r#"id="edge-rows""#));
        assert!(html.contains("<title>Flow &lt;graph&gt; &amp; co</title>"));
        // The embedded data is the graph.
        let data = html
            .split(r#"<script type="application/json" id="graph-data">"#)
            .nth(1)
            .unwrap()
            .split("</script>")
            .next()
            .unwrap();
        assert_eq!(FlowGraph::from_json(data).unwrap(), g);
        assert_eq!(html.matches("<script").count(), 2);
    }

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let json = script_json(&sample_graph());
        assert!(!json.contains('<') && !json.contains('>'));
        let escaped = "\"</script><!--\""
            .replace('<', "\\u003c")
            .replace('>', "\\u003e");
        assert_eq!(
            serde_json::from_str::<String>(&escaped).unwrap(),
            "</script><!--"
        );
    }
}
