//! Which features get a page: `all`, the `top-N` that fire most often, or ids and ranges.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gather::FeatureData;

/// The features a dashboard shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureSelection {
    /// Every feature of the SAE.
    All,
    /// The `N` features that fire on the most tokens (ties: lower id first); dead features
    /// are never picked.
    Top(usize),
    /// These ids (ascending, no repeats).
    Ids(Vec<usize>),
}

impl FromStr for FeatureSelection {
    type Err = Error;

    /// `all`, `top-N`, or comma-separated ids and inclusive ranges (`3,10-12`).
    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadSelection {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        if t == "all" {
            return Ok(FeatureSelection::All);
        }
        if let Some(n) = t.strip_prefix("top-") {
            let n: usize = n.parse().map_err(|_| bad("N in `top-N` is not a number"))?;
            if n == 0 {
                return Err(bad("`top-0` selects nothing"));
            }
            return Ok(FeatureSelection::Top(n));
        }
        let mut ids = Vec::new();
        for part in t.split(',').map(str::trim) {
            let id = |s: &str| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| bad(&format!("`{s}` is not a feature id")))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (id(a)?, id(b)?);
                    if a > b {
                        return Err(bad(&format!("the range `{part}` is empty")));
                    }
                    ids.extend(a..=b);
                }
                None => ids.push(id(part)?),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(FeatureSelection::Ids(ids))
    }
}

impl FeatureSelection {
    /// The features the pass must track for this selection on an SAE of width `d_sae`
    /// (`None`: all of them).
    ///
    /// # Errors
    /// [`Error::FeatureOutOfRange`] for an id past `d_sae`.
    pub fn tracked(&self, d_sae: usize) -> Result<Option<Vec<usize>>> {
        match self {
            FeatureSelection::Ids(ids) => {
                if let Some(&f) = ids.iter().find(|&&f| f >= d_sae) {
                    return Err(Error::FeatureOutOfRange { feature: f, d_sae });
                }
                Ok(Some(ids.clone()))
            }
            _ => Ok(None),
        }
    }

    /// The selected features among what `data` tracked, ascending.
    pub fn pick(&self, data: &FeatureData) -> Vec<usize> {
        match self {
            FeatureSelection::All => data.features.iter().map(|f| f.feature).collect(),
            FeatureSelection::Ids(ids) => ids
                .iter()
                .copied()
                .filter(|&f| data.get(f).is_some())
                .collect(),
            FeatureSelection::Top(n) => {
                let mut live: Vec<_> = data.features.iter().filter(|f| f.fired > 0).collect();
                live.sort_by(|a, b| b.fired.cmp(&a.fired).then(a.feature.cmp(&b.feature)));
                let mut ids: Vec<usize> = live.iter().take(*n).map(|f| f.feature).collect();
                ids.sort_unstable();
                ids
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FeatureSelection as S;

    #[test]
    fn selections_parse_and_bad_ones_say_why() {
        assert_eq!("all".parse::<S>().unwrap(), S::All);
        assert_eq!("top-25".parse::<S>().unwrap(), S::Top(25));
        assert_eq!(
            "7, 3,10-12,3".parse::<S>().unwrap(),
            S::Ids(vec![3, 7, 10, 11, 12])
        );
        for bad in ["top-x", "top-0", "3,a", "5-2", "", "1,,2"] {
            let e = bad.parse::<S>().unwrap_err().to_string();
            assert!(e.contains("is not a feature selection"), "{bad}: {e}");
        }
        let e = S::Ids(vec![1, 99]).tracked(50).unwrap_err().to_string();
        assert!(
            e.contains("feature 99 is out of range") && e.contains("d_sae = 50"),
            "{e}"
        );
    }
}
