//! The documentation agrees with the code: the README's command table has
//! exactly one row per subcommand that `visorsim --help` lists, and every
//! `docs/...` reference in a scenario file names a page and an anchor that
//! exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::util::{stderr, stdout, visorsim};

/// The workspace root (this crate is `harness/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ has a parent").to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The subcommands under `Commands:` in `visorsim --help` (without clap's
/// own `help`).
fn subcommands() -> Vec<String> {
    let out = visorsim(&["--help"]);
    assert!(out.status.success(), "visorsim --help failed: {}", stderr(&out));
    let text = stdout(&out);
    let lines = text.lines().skip_while(|l| l.trim_end() != "Commands:").skip(1);
    let mut names = Vec::new();
    for line in lines {
        // Entries are indented; a description continued on the next line is
        // indented further. The list ends at the first line that is not
        // indented (a blank line, then `Options:`).
        if !line.starts_with("  ") {
            break;
        }
        if line.starts_with("   ") {
            continue;
        }
        let name = line.split_whitespace().next().expect("an indented line has a word");
        if name != "help" {
            names.push(name.to_owned());
        }
    }
    assert!(!names.is_empty(), "no `Commands:` list in visorsim --help:\n{text}");
    names
}

/// The command of each row of the README's "The `visorsim` command" table:
/// the word after `visorsim` in the row's first cell.
fn readme_rows() -> Vec<String> {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("The `visorsim` command"))
        .expect("README.md has a \"## The `visorsim` command\" section");
    section
        .lines()
        .filter(|l| l.starts_with("| `visorsim "))
        .map(|l| {
            l.trim_start_matches("| `visorsim ")
                .split(|c: char| c.is_whitespace() || c == '`')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn readme_command_table_has_one_row_per_subcommand() {
    let commands = subcommands();
    let rows = readme_rows();
    let mut problems = Vec::new();
    for c in &commands {
        match rows.iter().filter(|r| *r == c).count() {
            1 => {}
            0 => problems
                .push(format!("`visorsim {c}` has no row in README.md's command table (see `visorsim {c} --help`)")),
            n => problems.push(format!("`visorsim {c}` has {n} rows in README.md's command table")),
        }
    }
    for r in rows.iter().collect::<BTreeSet<_>>() {
        if !commands.contains(r) {
            problems
                .push(format!("README.md's command table has a row for `visorsim {r}`, which --help does not list"));
        }
    }
    assert!(problems.is_empty(), "{}\n(--help lists: {})", problems.join("\n"), commands.join(", "));
}

/// The anchors a Markdown page offers: its headings, as GitHub turns them
/// into ids (lower case; letters, digits, `-` and `_` kept, spaces to `-`,
/// everything else dropped), and explicit `<a id="...">` tags.
fn anchors(page: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(title) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')) {
            if title.starts_with(' ') {
                let slug: String = title
                    .trim()
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect();
                ids.insert(slug);
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("<a id=\"") {
            rest = &rest[at + 7..];
            if let Some(end) = rest.find('"') {
                ids.insert(rest[..end].to_owned());
            }
        }
    }
    ids
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn scenario_references_into_docs_resolve() {
    let root = root();
    let mut files = Vec::new();
    json_files(&root.join("scenarios"), &mut files);
    files.sort();
    let mut checked = 0;
    let mut problems = Vec::new();
    for file in &files {
        let scenario: serde_json::Value =
            serde_json::from_str(&read(file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let references = scenario["references"].as_array().cloned().unwrap_or_default();
        for reference in references.iter().filter_map(|r| r.as_str()) {
            if !reference.starts_with("docs/") {
                continue;
            }
            checked += 1;
            let (page, anchor) = reference.split_once('#').unwrap_or((reference, ""));
            let path = root.join(page);
            let shown = file.strip_prefix(&root).unwrap_or(file).display();
            if !path.is_file() {
                problems.push(format!("{shown}: `{reference}`: no file {page}"));
            } else if !anchor.is_empty() && !anchors(&read(&path)).contains(anchor) {
                problems.push(format!("{shown}: `{reference}`: {page} has no section `#{anchor}`"));
            }
        }
    }
    assert!(checked > 0, "no scenario file cites docs/: are the scenarios where they were?");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The relative links `[text](path#anchor)` of a Markdown page (outside code
/// blocks and code spans), web links left out.
fn relative_links(page: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
            rest = &rest[end..];
        }
    }
    links
}

#[test]
fn readme_and_docs_links_resolve() {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("CONTRIBUTING.md"), root.join("scenarios/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 5, "docs/ should hold README, architecture, bootloader, host and field-bugs");
    pages.extend(docs);
    let mut problems = Vec::new();
    for page in &pages {
        let text = read(page);
        let dir = page.parent().expect("a page is in a directory");
        let shown = page.strip_prefix(&root).unwrap_or(page).display();
        for link in relative_links(&text) {
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { dir.join(file) };
            if !target.exists() {
                problems.push(format!("{shown}: link `{link}`: no such file"));
            } else if !anchor.is_empty() && target.is_file() && !anchors(&read(&target)).contains(anchor) {
                problems.push(format!("{shown}: link `{link}`: no section `#{anchor}` there"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
