//! Feature explanations from a Neuronpedia export: the JSON array that Neuronpedia's
//! explanation export gives (objects with `modelId`, `layer`, `index` and `description`),
//! or the same objects one per line (JSONL).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// One explanation per feature (the first a file gives for it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explanations {
    /// Feature id → explanation.
    pub by_feature: BTreeMap<usize, String>,
    /// The Neuronpedia source the file is for (`modelId/layer`, e.g. `gpt2-small/6-res-jb`),
    /// when its entries say.
    pub source: Option<String>,
}

impl Explanations {
    /// Reads a Neuronpedia explanation export.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Malformed`] for a file that is neither a JSON array nor JSON
    /// lines of objects, an entry without an integer `index` (a number or a string of digits)
    /// or a string `description`, or entries for more than one SAE.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let entries: Vec<Value> = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Object(o)) => match o.get("explanations") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![Value::Object(o)],
            },
            Ok(_) => return Err(bad("expected a JSON array of explanation objects".into())),
            Err(_) => text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1)))
                })
                .collect::<Result<_>>()?,
        };
        let mut out = Explanations::default();
        for (i, e) in entries.iter().enumerate() {
            let index = match e.get("index") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| bad(format!("entry {i}: no integer `index`")))?;
            let description = e
                .get("description")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("entry {i}: no string `description`")))?;
            let source = match (e.get("modelId"), e.get("layer")) {
                (Some(Value::String(m)), Some(Value::String(l))) => Some(format!("{m}/{l}")),
                _ => None,
            };
            if let Some(s) = source {
                match &out.source {
                    Some(first) if *first != s => {
                        return Err(bad(format!(
                        "entry {i} is for `{s}`, earlier entries for `{first}`: one file per SAE"
                    )))
                    }
                    _ => out.source = Some(s),
                }
            }
            out.by_feature
                .entry(index as usize)
                .or_insert_with(|| description.trim().to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_reads_as_array_or_lines_and_bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.json");
        std::fs::write(
            &p,
            r#"[{"modelId":"gpt2-small","layer":"6-res-jb","index":"14","description":" the word happy ","typeName":"oai_token-act-pair"},
                {"modelId":"gpt2-small","layer":"6-res-jb","index":14,"description":"second"},
                {"modelId":"gpt2-small","layer":"6-res-jb","index":3,"description":"sad"}]"#,
        )
        .unwrap();
        let e = Explanations::read(&p).unwrap();
        assert_eq!(e.by_feature[&14], "the word happy");
        assert_eq!(e.by_feature[&3], "sad");
        assert_eq!(e.source.as_deref(), Some("gpt2-small/6-res-jb"));
        std::fs::write(
            &p,
            "{\"index\": 2, \"description\": \"a\"}\n{\"index\": 5, \"description\": \"b\"}\n",
        )
        .unwrap();
        assert_eq!(Explanations::read(&p).unwrap().by_feature.len(), 2);
        for (bad, says) in [
            (r#"[{"index":"x","description":"a"}]"#, "no integer `index`"),
            (r#"[{"index":1}]"#, "no string `description`"),
            ("not json\n", "line 1"),
            (
                r#"[{"modelId":"a","layer":"1","index":1,"description":"x"},{"modelId":"b","layer":"1","index":2,"description":"y"}]"#,
                "one file per SAE",
            ),
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = Explanations::read(&p).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
