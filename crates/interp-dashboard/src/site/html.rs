//! What every page shares: escaping, the style sheet, numbers and shaded token spans.

use super::{Dashboard, ShownExample};

/// `text` escaped for HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON made safe inside `<script type="application/json">`.
pub(super) fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .expect("dashboard data serialises")
        .replace("</", "<\\/")
}

/// A token as shown: newlines and tabs made visible.
pub(super) fn token_label(text: &str) -> String {
    text.replace('\n', "↵").replace('\t', "→")
}

/// A number with 3 significant digits (`0.00123`, `12.3`, `4.57e6`).
pub(super) fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{x:.2e}");
    }
    let digits = (2 - a.log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// The page head: title and the shared style sheet.
pub(super) fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n",
        escape(title)
    )
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}\
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;font-size:.9em}\
th{cursor:pointer;background:#f3f3f3;user-select:none}tr:nth-child(even) td{background:#fafafa}\
.meta{color:#666;font-size:.9em}.cols{display:flex;gap:2em;flex-wrap:wrap}\
.example{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;margin:2px 0;white-space:pre-wrap}\
.tok{border-radius:2px}.tok.at{outline:1.5px solid #c0392b}.act{color:#888;display:inline-block;width:4.5em}\
.pos{color:#1a7f37}.neg{color:#b42318}#hover-info{position:fixed;right:1em;top:1em;background:#fff;\
border:1px solid #ccc;padding:4px 8px;font-size:.85em;min-width:8em}\
#search{font-size:1em;padding:4px;width:24em}#pager button{margin:0 .3em}a{color:#0969da}";

/// The colour of activation `a` on a feature whose largest activation is `max`.
fn shade(a: f32, max: f32) -> String {
    let alpha = if max > 0.0 {
        (a / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    format!("rgba(255,140,0,{alpha:.3})")
}

/// One example: its activation, then its context's tokens shaded by activation; hovering a
/// token shows its activation.
pub(super) fn example(d: &Dashboard, e: &ShownExample, max: f32) -> String {
    let mut out = format!(
        "<div class=\"example\" data-activation=\"{}\"><span class=\"act\">{}</span>",
        e.activation,
        num(f64::from(e.activation))
    );
    for (i, (&t, &a)) in e.tokens.iter().zip(&e.acts).enumerate() {
        let text = token_label(d.token(t));
        let class = if i == e.at { "tok at" } else { "tok" };
        out.push_str(&format!(
            "<span class=\"{class}\" style=\"background:{}\" data-act=\"{a}\" title=\"{} · {}\">{}</span>",
            shade(a, max),
            escape(&format!("{text:?}")),
            num(f64::from(a)),
            escape(&text)
        ));
    }
    out.push_str("</div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_significant_digits_and_text_is_escaped() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(0.001234), "0.00123");
        assert_eq!(num(4_567_000.0), "4.57e6");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(script_json(&"</script>"), "\"<\\/script>\"");
    }
}
