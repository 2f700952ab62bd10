//! The index: every shown feature in a table that sorts by any column and filters by a search
//! (id, top tokens or explanation), drawn 100 rows at a time by a small script from the data
//! embedded in the page, so a site of 131k features opens at once.

use serde::Serialize;

use super::html::{head, script_json, token_label};
use super::Dashboard;

/// One index row (also `index.json`'s `features`).
#[derive(Clone, Debug, Serialize)]
pub(super) struct Row {
    id: usize,
    density: f64,
    max: f32,
    mean: f64,
    top_tokens: String,
    explanation: String,
}

pub(super) fn rows(d: &Dashboard) -> Vec<Row> {
    d.features
        .iter()
        .map(|v| Row {
            id: v.feature,
            density: v.density,
            max: v.max,
            mean: v.mean,
            top_tokens: v
                .top_tokens
                .iter()
                .map(|&t| format!("{:?}", token_label(d.token(t))))
                .collect::<Vec<_>>()
                .join(" "),
            explanation: v.explanation.clone().unwrap_or_default(),
        })
        .collect()
}

pub(super) fn render(d: &Dashboard, rows: &[Row]) -> String {
    let mut out = head(&d.info.title);
    out.push_str(&format!(
        "<body>\n<h1>{}</h1><p class=\"meta\">{} · d_sae {} · {} features shown · {} tokens in {} windows of {}</p>\n",
        super::html::escape(&d.info.title),
        super::html::escape(&d.info.hook),
        d.info.d_sae,
        rows.len(),
        d.info.tokens,
        d.info.windows,
        d.info.context_size,
    ));
    out.push_str(
        "<p><input id=\"search\" type=\"search\" placeholder=\"search id, tokens, explanation\"> \
         <span id=\"count\"></span></p>\n<table id=\"features\"><thead><tr>\
         <th data-key=\"id\">feature</th><th data-key=\"density\">density</th>\
         <th data-key=\"max\">max</th><th data-key=\"mean\">mean</th>\
         <th data-key=\"top_tokens\">top tokens</th><th data-key=\"explanation\">explanation</th>\
         </tr></thead><tbody id=\"rows\"></tbody></table>\n\
         <p id=\"pager\"><button id=\"prev-page\">←</button><span id=\"page\"></span>\
         <button id=\"next-page\">→</button></p>\n",
    );
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"index-data\">{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        script_json(&rows)
    ));
    out
}

/// Sorting (click a header; again to reverse), search, paging. The page's hash can preset
/// them: `#q=text&sort=key&desc=1&page=N`.
const SCRIPT: &str = r#"
(function () {
  var rows = JSON.parse(document.getElementById('index-data').textContent);
  var PER_PAGE = 100;
  var state = { q: '', sort: 'id', desc: false, page: 0 };
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var p = kv.split('=');
    if (p[0] === 'q') state.q = decodeURIComponent(p[1] || '');
    if (p[0] === 'sort') state.sort = p[1];
    if (p[0] === 'desc') state.desc = p[1] === '1';
    if (p[0] === 'page') state.page = parseInt(p[1], 10) || 0;
  });
  var search = document.getElementById('search');
  search.value = state.q;
  function fmt(x) {
    if (typeof x !== 'number') return x;
    if (x === 0) return '0';
    var a = Math.abs(x);
    return (a >= 1e-4 && a < 1e6) ? x.toPrecision(3) : x.toExponential(2);
  }
  function cell(tr, text) {
    var td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function draw() {
    var q = state.q.toLowerCase();
    var shown = rows.filter(function (r) {
      return !q || String(r.id) === q || r.top_tokens.toLowerCase().indexOf(q) >= 0 ||
        r.explanation.toLowerCase().indexOf(q) >= 0;
    });
    var k = state.sort;
    shown.sort(function (a, b) {
      var x = a[k], y = b[k];
      var c = x < y ? -1 : x > y ? 1 : a.id - b.id;
      return state.desc ? -c : c;
    });
    var pages = Math.max(1, Math.ceil(shown.length / PER_PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var body = document.getElementById('rows');
    body.textContent = '';
    shown.slice(state.page * PER_PAGE, (state.page + 1) * PER_PAGE).forEach(function (r) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-id', String(r.id));
      var a = document.createElement('a');
      a.href = 'features/' + r.id + '.html';
      a.textContent = String(r.id);
      cell(tr, '').appendChild(a);
      cell(tr, fmt(r.density * 100) + '%');
      cell(tr, fmt(r.max));
      cell(tr, fmt(r.mean));
      cell(tr, r.top_tokens).className = 'example';
      cell(tr, r.explanation);
      body.appendChild(tr);
    });
    document.getElementById('count').textContent = shown.length + ' of ' + rows.length + ' features';
    document.getElementById('page').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
  }
  document.querySelectorAll('th[data-key]').forEach(function (th) {
    th.addEventListener('click', function () {
      var k = th.getAttribute('data-key');
      state.desc = state.sort === k ? !state.desc : k !== 'id';
      state.sort = k;
      draw();
    });
  });
  search.addEventListener('input', function () { state.q = search.value; state.page = 0; draw(); });
  document.getElementById('prev-page').addEventListener('click', function () { state.page--; draw(); });
  document.getElementById('next-page').addEventListener('click', function () { state.page++; draw(); });
  draw();
})();
"#;
