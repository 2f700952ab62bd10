//! README's crate map lists, for every workspace crate, exactly the workspace crates its
//! `Cargo.toml` has under `[dependencies]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `interp-*` names under `[dependencies]` of a manifest (dev- and build-dependencies
/// excluded).
fn workspace_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut names = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && line.starts_with("interp-") {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            names.insert(name.to_string());
        }
    }
    names
}

/// `crate ← a, b (note), c   description` lines of the README's crate-map block.
fn readme_map(readme: &str) -> BTreeMap<String, BTreeSet<String>> {
    let block = readme
        .split("### Crate map")
        .nth(1)
        .and_then(|s| s.split("```text\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README has a crate-map block");
    block
        .lines()
        .map(|line| {
            let (name, rest) = line.split_once('←').expect("`name ← deps` lines");
            let deps = rest
                .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
                .filter(|w| w.starts_with("interp-"))
                .map(String::from)
                .collect();
            (name.trim().to_string(), deps)
        })
        .collect()
}

#[test]
fn the_readme_crate_map_matches_the_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = readme_map(&std::fs::read_to_string(root.join("README.md")).unwrap());
    let mut manifests = vec![root.join("Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        manifests.push(entry.unwrap().path().join("Cargo.toml"));
    }
    let mut seen = BTreeSet::new();
    for path in manifests {
        let manifest = std::fs::read_to_string(&path).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{} has a package name", path.display()));
        let listed = map
            .get(name)
            .unwrap_or_else(|| panic!("README's crate map lacks `{name}`"));
        assert_eq!(
            listed,
            &workspace_dependencies(&manifest),
            "README's crate map line of `{name}` differs from {}",
            path.display()
        );
        seen.insert(name.to_string());
    }
    let extra: Vec<_> = map.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        extra.is_empty(),
        "README maps crates that do not exist: {extra:?}"
    );
}
