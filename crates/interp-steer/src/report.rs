//! Steering reports: the settings' samples and scores as JSON, a markdown table, and a
//! coefficient-vs-score plot.

use std::fmt::Write as _;
use std::path::Path;

use interp_core::plot::{line_chart, Series};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generate::SettingResult;

/// The results of several steering settings on one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SteeringReport {
    /// A title for the markdown and the plot.
    pub title: String,
    /// The prompt, as text (empty when settings have different prompts).
    pub prompt: String,
    /// Markdown put under the title (tables an example lays out itself, say).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// The settings, in the order they were run.
    pub settings: Vec<SettingResult>,
}

impl SteeringReport {
    /// A report of `settings` run on `prompt`.
    pub fn new(
        title: impl Into<String>,
        prompt: impl Into<String>,
        settings: Vec<SettingResult>,
    ) -> Self {
        SteeringReport {
            title: title.into(),
            prompt: prompt.into(),
            summary: String::new(),
            settings,
        }
    }

    /// With `markdown` under the title.
    pub fn with_summary(mut self, markdown: impl Into<String>) -> Self {
        self.summary = markdown.into();
        self
    }

    /// The names of every score any setting has, sorted.
    pub fn score_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .settings
            .iter()
            .flat_map(|s| s.scores.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A markdown table: one row per setting, one column per score, then `samples_shown`
    /// continuations of each setting.
    pub fn to_markdown(&self, samples_shown: usize) -> String {
        let names = self.score_names();
        let mut md = format!("# {}\n\n", self.title);
        if !self.prompt.is_empty() {
            let _ = writeln!(md, "Prompt: `{}`\n", self.prompt);
        }
        if !self.summary.is_empty() {
            let _ = writeln!(md, "{}\n", self.summary.trim_end());
        }
        let _ = writeln!(md, "| setting | samples | {} |", names.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(names.len()));
        for s in &self.settings {
            let cells: Vec<String> = names
                .iter()
                .map(|n| s.scores.get(n).map_or("—".into(), |v| format!("{v:.3}")))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                s.label,
                s.samples.len(),
                cells.join(" | ")
            );
        }
        for s in &self.settings {
            let _ = writeln!(md, "\n## {}\n", s.label);
            for sample in s.samples.iter().take(samples_shown) {
                let _ = writeln!(md, "- {}{}", self.prompt, sample.text.replace('\n', " "));
            }
        }
        md
    }

    /// Writes the report as pretty JSON, atomically.
    ///
    /// # Errors
    /// [`crate::Error::Core`] if the file cannot be written.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("a report serialises");
        Ok(interp_core::write_atomic(path, &json)?)
    }

    /// Writes `report.md` (with `samples_shown` continuations per setting) and `results.json`
    /// into `dir`, atomically, and returns their paths.
    ///
    /// # Errors
    /// [`crate::Error::Core`] if a file cannot be written.
    pub fn write_dir(&self, dir: &Path, samples_shown: usize) -> Result<[std::path::PathBuf; 2]> {
        let md = dir.join("report.md");
        interp_core::write_atomic(&md, self.to_markdown(samples_shown).as_bytes())?;
        let json = dir.join("results.json");
        self.write_json(&json)?;
        Ok([md, json])
    }

    /// Plots each score against the settings' coefficients (settings without a coefficient
    /// are left out), one line per score named in `scores`.
    ///
    /// # Errors
    /// The plot's errors (no setting with a coefficient, an unwritable path).
    pub fn plot_sweep(&self, path: &Path, scores: &[&str]) -> Result<()> {
        let series: Vec<Series> = scores
            .iter()
            .map(|name| {
                let points = self
                    .settings
                    .iter()
                    .filter_map(|s| Some((f64::from(s.coefficient?), *s.scores.get(*name)?)))
                    .collect();
                Series::new(*name, points)
            })
            .collect();
        line_chart(path, &self.title, "coefficient", "score", &series, false)?;
        Ok(())
    }
}
