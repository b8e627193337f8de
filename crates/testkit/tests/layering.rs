//! The workspace's dependency graph runs one way: every visorsim crate
//! depends (normal, build or dev) only on crates below it in the data flow
//!
//! ```text
//!   testkit ← tools  (side crates: the tools crate depends on no visorsim
//!                     crate but the test kit, for its tests)
//!   disk ← media ← boot ← image ← host ← scenario ← visorsim ← benches
//! ```
//!
//! and the test kit is only ever a dev-dependency. Read from `cargo
//! metadata`, so a new edge fails here before review.

use std::process::Command;

/// Rank in the data flow; a crate may depend only on lower ranks.
fn rank(name: &str) -> Option<u32> {
    Some(match name {
        "visorsim-testkit" => 0,
        // Beside disk: neither may depend on the other.
        "visorsim-tools" | "visorsim-disk" => 1,
        "visorsim-media" => 2,
        "visorsim-boot" => 3,
        "visorsim-image" => 4,
        "visorsim-host" => 5,
        "visorsim-scenario" => 6,
        "visorsim" => 7,
        "visorsim-benches" => 8,
        _ => return None,
    })
}

#[test]
fn no_dependency_points_upwards() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let own = rank(name).unwrap_or_else(|| panic!("{name} has no place in the data flow: add it to rank()"));
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let Some(theirs) = rank(dep_name) else { continue };
            let kind = dep["kind"].as_str().unwrap_or("normal");
            checked += 1;
            if theirs >= own {
                wrong.push(format!("{name} -> {dep_name} ({kind})"));
            }
            if dep_name == "visorsim-testkit" && kind != "dev" {
                wrong.push(format!("{name} -> {dep_name} as a {kind} dependency (dev only)"));
            }
        }
    }
    assert!(packages.len() >= 10, "expected the whole workspace, found {} packages", packages.len());
    assert!(checked > 10, "only {checked} edges between visorsim crates: is this the workspace?");
    assert!(wrong.is_empty(), "dependencies pointing upwards or sideways:\n{}", wrong.join("\n"));
}
