//! The seed-003 report: the flow graph, predecessor groups, deactivation and multi-layer
//! steering results as markdown, JSON and a sweep figure, written atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::deactivate::Deactivation;
use crate::error::{Error, Result};
use crate::graph::{write_text, FlowGraph};
use crate::groups::{Group, PredecessorGroups};
use crate::node::NodeId;

/// One steered setting of a sweep: which feature set, its size, the base coefficient and the
/// interp-steer scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteeringRow {
    /// The setting (`single layer`, `graph, exponential`, …).
    pub label: String,
    /// Number of features steered.
    pub features: usize,
    /// The base coefficient s.
    pub coefficient: f32,
    /// Scores by scorer name.
    pub scores: BTreeMap<String, f64>,
}

/// For each label, the row with the highest `score` among those whose `coherence` is at most
/// `max_drop` below the label's coefficient-0 row ("at comparable coherence"). Labels without
/// a coefficient-0 row are compared with the best coherence they reach.
pub fn best_at_coherence(
    rows: &[SteeringRow],
    score: &str,
    coherence: &str,
    max_drop: f64,
) -> Vec<SteeringRow> {
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.dedup();
    let mut out = Vec::new();
    for label in labels {
        let mine: Vec<&SteeringRow> = rows.iter().filter(|r| r.label == label).collect();
        let base = mine
            .iter()
            .find(|r| r.coefficient == 0.0)
            .or_else(|| {
                mine.iter()
                    .max_by(|a, b| a.scores[coherence].total_cmp(&b.scores[coherence]))
            })
            .map(|r| r.scores.get(coherence).copied().unwrap_or(f64::NAN));
        let Some(base) = base else { continue };
        let best = mine
            .iter()
            .filter(|r| {
                r.scores
                    .get(coherence)
                    .is_some_and(|&c| c >= base - max_drop)
            })
            .max_by(|a, b| {
                let s = |r: &SteeringRow| r.scores.get(score).copied().unwrap_or(f64::NAN);
                s(a).total_cmp(&s(b))
            });
        if let Some(b) = best {
            out.push((*b).clone());
        }
    }
    out
}

/// Everything one run of the seed-003 pipeline found.
#[derive(Clone, Debug, Serialize)]
pub struct FlowReport<'a> {
    /// Where the model and SAEs came from.
    pub source: String,
    /// The graph's start feature.
    pub start: NodeId,
    /// The flow graph.
    pub graph: &'a FlowGraph,
    /// Predecessor groups, if run.
    pub groups: Option<&'a PredecessorGroups>,
    /// Deactivation, if run.
    pub deactivation: Option<&'a Deactivation>,
    /// Multi-layer steering sweep rows.
    pub steering: &'a [SteeringRow],
    /// The steering score and coherence keys and the coherence drop allowed.
    pub steering_keys: (String, String, f64),
}

impl FlowReport<'_> {
    /// The report as markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Feature flow (seed 003)\n\nSubject: {}\n",
            self.source
        );
        let _ = writeln!(
            md,
            "## Flow graph of {}\n\n{} nodes, {} edges (JSON, DOT, SVG, HTML and circuit-tracer \
             JSON beside this report).\n\n| source | target | cosine |\n|---|---|---|",
            self.start,
            self.graph.nodes.len(),
            self.graph.edges.len()
        );
        for e in &self.graph.edges {
            let _ = writeln!(md, "| {} | {} | {:.3} |", e.source, e.target, e.score);
        }
        if let Some(g) = self.groups {
            let _ = writeln!(
                md,
                "\n## Predecessor groups (top-{})\n\n{} texts, {} tokens, {} active features.\n",
                g.options.top_n,
                g.texts,
                g.tokens,
                g.samples.len()
            );
            let _ = write!(md, "| layer |");
            for grp in Group::ALL {
                let _ = write!(md, " {} |", grp.name());
            }
            let _ = writeln!(
                md,
                " MWU tests with p < 0.001 |\n|---|{}---|",
                "---|".repeat(8)
            );
            for l in &g.layers {
                let _ = write!(md, "| {} |", l.layer);
                for s in l.shares {
                    let _ = write!(md, " {:.1} % |", 100.0 * s);
                }
                let _ = writeln!(
                    md,
                    " {:.0} % of {} |",
                    100.0 * l.share_p_below_0_001,
                    l.tests
                );
            }
        }
        if let Some(d) = self.deactivation {
            let _ = writeln!(
                md,
                "\n## Deactivation\n\n| method | r | trials | success | activation change | relative loss change |\n|---|---|---|---|---|---|"
            );
            for s in &d.summary {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} % | {:.3} | {:+.4} |",
                    s.method.name(),
                    s.factor,
                    s.trials,
                    100.0 * s.success_rate,
                    s.mean_activation_change,
                    s.mean_relative_loss_change
                );
            }
        }
        if !self.steering.is_empty() {
            let (score, coherence, drop) = &self.steering_keys;
            let _ = writeln!(md, "\n## Multi-layer steering\n\n| setting | features | s | {score} | {coherence} |\n|---|---|---|---|---|");
            for r in self.steering {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.3} | {:.3} |",
                    r.label,
                    r.features,
                    r.coefficient,
                    r.scores.get(score).copied().unwrap_or(f64::NAN),
                    r.scores.get(coherence).copied().unwrap_or(f64::NAN)
                );
            }
            let _ = writeln!(md, "\nBest {score} per setting with {coherence} at most {drop} below its unsteered value:\n");
            for r in best_at_coherence(self.steering, score, coherence, *drop) {
                let _ = writeln!(
                    md,
                    "- {}: {:.3} at s = {}",
                    r.label,
                    r.scores.get(score).copied().unwrap_or(f64::NAN),
                    r.coefficient
                );
            }
        }
        md
    }

    /// Writes `report.md`, `report.json` and (with steering rows) `steering_sweep.png` into
    /// `dir`, each atomically.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Malformed`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_text(&dir.join("report.md"), &self.to_markdown())?;
        let json = serde_json::json!({
            "source": self.source,
            "start": self.start,
            "graph": self.graph,
            "groups": self.groups.map(PredecessorGroups::summary_json),
            "deactivation": self.deactivation.map(|d| &d.summary),
            "steering": self.steering,
        });
        write_text(
            &dir.join("report.json"),
            &serde_json::to_string_pretty(&json).expect("json"),
        )?;
        if self.steering.is_empty() {
            return Ok(());
        }
        let score = &self.steering_keys.0;
        let mut labels: Vec<&str> = self.steering.iter().map(|r| r.label.as_str()).collect();
        labels.dedup();
        let series: Vec<interp_core::plot::Series> = labels
            .iter()
            .map(|&l| {
                let pts = self
                    .steering
                    .iter()
                    .filter(|r| r.label == l)
                    .filter_map(|r| Some((r.coefficient as f64, *r.scores.get(score)?)))
                    .collect();
                interp_core::plot::Series::new(l, pts)
            })
            .collect();
        interp_core::plot::line_chart(
            &dir.join("steering_sweep.png"),
            "Single-layer vs multi-layer steering",
            "base coefficient s",
            score,
            &series,
            false,
        )
        .map_err(|e| Error::Malformed {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })
    }
}
