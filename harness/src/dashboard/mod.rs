//! `visorsim dashboard HISTORY --out DIR`: the runs of a `visorsim bench`
//! history file drawn as one static, self-contained page (`DIR/index.html`:
//! inline CSS, inline SVG charts, a few lines of inline script for the
//! machine selector; no CDN, no server; without script every machine is
//! shown).
//!
//! Runs are grouped by machine (CPU model and cores, [`Machine::key`]) and
//! never drawn across machines. For each machine: the latest run as a table
//! (each figure, min–max, MB/s, its ratio to every peer, to its limit, and
//! its change from the run before by the regression rule of
//! [`crate::bench::trend`]), the cold-boot targets and bound, where one cold
//! boot's time goes, and a trend chart per figure ([`chart`]).

mod chart;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::bench::record::{read_history, Machine, Run, Spread};
use crate::bench::trend::{classify, Change};
use crate::bench::{compare, seconds};
use crate::failure::{Context, Failure, Status};
use chart::{trend_svg, Point};

/// Arguments of `visorsim dashboard`.
#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// History file written by `visorsim bench --history`.
    history: PathBuf,
    /// Directory to write index.html into (created).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `visorsim dashboard`.
pub fn run(args: DashboardArgs) -> Result<Status, Failure> {
    let runs = read_history(&args.history).map_err(|e| Failure::msg(e.to_string()))?;
    if runs.is_empty() {
        return Err(Failure::msg(format!("{} holds no run", args.history.display())));
    }
    let page = page(&runs, &args.history.display().to_string());
    std::fs::create_dir_all(&args.out).context(|| format!("Creating {}", args.out.display()))?;
    let index = args.out.join("index.html");
    std::fs::write(&index, page).context(|| format!("Writing {}", index.display()))?;
    println!("Wrote {} ({} runs, {} machines)", index.display(), runs.len(), machines(&runs).len());
    Ok(Status::Success)
}

/// Runs by machine key, in history order within each.
fn machines(runs: &[Run]) -> BTreeMap<String, Vec<&Run>> {
    let mut by: BTreeMap<String, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by.entry(run.machine.key()).or_default().push(run);
    }
    by
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "-".to_owned(), |c| c[..c.len().min(8)].to_owned())
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:13px}td:first-child,th:first-child{text-align:left}\
.missing{color:#999}.bad{color:#b00;font-weight:bold}.good{color:#080;font-weight:bold}.bar{background:#6a8fd0;height:10px;display:inline-block}\
.charts{display:flex;flex-wrap:wrap;gap:8px}.charts figure{margin:0}.note{color:#555;font-size:13px}";

const SCRIPT: &str = "(function(){var s=document.getElementById('machine');function show(){var v=s.value;\
document.querySelectorAll('section.machine').forEach(function(e){e.style.display=(e.dataset.machine===v)?'':'none';});}\
if(s){s.addEventListener('change',show);show();}document.body.dataset.ready='1';})();";

/// The whole page.
pub fn page(runs: &[Run], source: &str) -> String {
    let by = machines(runs);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>visorsim benchmarks</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>visorsim benchmarks</h1><p class=\"note\">{} runs from {} on {} machine(s). Times are medians of interleaved rounds \
         (smaller is better); ratios to a peer are the peer's median over this one (above 1: visorsim is faster).</p>",
        runs.len(),
        esc(source),
        by.len()
    );
    let _ = write!(h, "<p><label>Machine: <select id=\"machine\">");
    for (i, key) in by.keys().enumerate() {
        let _ = write!(h, "<option value=\"m{i}\">{}</option>", esc(key));
    }
    let _ = write!(h, "</select></label></p>");
    for (i, (key, runs)) in by.iter().enumerate() {
        let _ = write!(h, "<section class=\"machine\" data-machine=\"m{i}\"><h2>{}</h2>", esc(key));
        machine_section(&mut h, runs);
        let _ = write!(h, "</section>");
    }
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

fn machine_line(m: &Machine) -> String {
    format!(
        "Linux {}, THP {}, load average {:.2} before, {:.2} after",
        m.kernel,
        m.thp.as_deref().unwrap_or("?"),
        m.load_before[0],
        m.load_after[0]
    )
}

fn machine_section(h: &mut String, runs: &[&Run]) {
    let Some(latest) = runs.last() else { return };
    let previous = runs.len().checked_sub(2).map(|i| runs[i]);
    let _ = write!(
        h,
        "<h3>Latest run: {} at commit {}{}</h3><p class=\"note\">{}; {} rounds after {} warm-up; {} MB of modules ({} MB uncompressed){}</p>",
        esc(&latest.date),
        esc(&short(latest.commit.as_deref())),
        if latest.dirty { " (with uncommitted changes)" } else { "" },
        esc(&machine_line(&latest.machine)),
        latest.settings.rounds,
        latest.settings.warmup,
        latest.settings.modules_compressed / 1_000_000,
        latest.settings.modules_uncompressed / 1_000_000,
        if latest.settings.quick { "; <b>--quick</b>: a check of the machinery, not a measurement" } else { "" }
    );
    latest_table(h, latest, previous);
    targets(h, latest);
    breakdown(h, latest);
    tools(h, latest);
    trends(h, runs);
}

fn latest_table(h: &mut String, run: &Run, previous: Option<&Run>) {
    let peers: Vec<&str> = run
        .figures
        .iter()
        .filter(|f| f.kind == crate::bench::record::Kind::Peer && f.spread().is_some())
        .map(|f| f.id.as_str())
        .collect();
    let _ = write!(h, "<table id=\"latest\"><tr><th>figure</th><th>median</th><th>min–max</th><th>MB/s</th>");
    for p in &peers {
        let _ = write!(h, "<th>vs {}</th>", esc(p.trim_start_matches("peer/")));
    }
    let _ = write!(h, "<th>vs limit</th><th>vs</th><th>since the run before</th></tr>");
    for f in &run.figures {
        let _ = write!(h, "<tr><td title=\"{}\">{}</td>", esc(&f.label), esc(&f.id));
        let Some(s) = f.spread() else {
            let _ = write!(
                h,
                "<td class=\"missing\" colspan=\"{}\">missing: {}</td></tr>",
                peers.len() + 6,
                esc(f.missing.as_deref().unwrap_or("no samples"))
            );
            continue;
        };
        let per = if f.per == "run" { String::new() } else { format!("/{}", f.per) };
        let _ = write!(
            h,
            "<td>{}{}</td><td>{} – {}</td><td>{}</td>",
            seconds(s.median),
            esc(&per),
            seconds(s.min),
            seconds(s.max),
            compare::throughput(f).map_or("".to_owned(), |t| format!("{:.0}", t / 1e6))
        );
        let ratios = compare::peer_ratios(run, f);
        for p in &peers {
            match ratios.iter().find(|(id, _)| id == p) {
                Some((_, r)) => {
                    let _ = write!(h, "<td class=\"{}\">{r:.2}×</td>", if *r >= 1.0 { "good" } else { "bad" });
                }
                None => h.push_str("<td></td>"),
            }
        }
        let limit = compare::limit_ratio(run, f).map_or(String::new(), |(what, r)| format!("{r:.2}× {what}"));
        let versus =
            compare::versus_ratio(run, f).map_or(String::new(), |(what, r)| format!("{r:.1}× faster than {what}"));
        let change = previous
            .and_then(|p| p.figures.iter().find(|g| g.id == f.id))
            .and_then(|g| g.spread())
            .map(|before| (before, classify(&before, &s)));
        let change = match change {
            Some((before, c)) => {
                let class = match c {
                    Change::Regression => "bad",
                    Change::Improvement => "good",
                    Change::Within => "",
                };
                format!("<td class=\"{class}\">{} ({:+.1}%)</td>", c.name(), (s.median / before.median - 1.0) * 100.0)
            }
            None => "<td></td>".to_owned(),
        };
        let _ = write!(h, "<td>{}</td><td>{}</td>{change}</tr>", esc(&limit), esc(&versus));
    }
    h.push_str("</table>");
}

fn targets(h: &mut String, run: &Run) {
    if let Some(b) = &run.bound {
        let _ = write!(
            h,
            "<p id=\"bound\">Bound on a cold boot on {} cores, from this run's single-core throughputs: with both MD5s \
             <b>{}</b> = max(MD5 chain of the uncompressed s.v00 {}, CPU work {} / {}); without them <b>{}</b> \
             (inflate and CRC32 {} / {}).</p>",
            b.cores,
            seconds(b.with_md5),
            seconds(b.chain),
            seconds(b.work_with_md5),
            b.cores,
            seconds(b.without_md5),
            seconds(b.work_without_md5),
            b.cores
        );
    }
    let t = compare::targets(run);
    if t.is_empty() {
        return;
    }
    h.push_str("<table id=\"targets\"><tr><th>target</th><th>measured</th><th></th></tr>");
    for t in t {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.2}×</td><td class=\"{}\">{}</td></tr>",
            esc(&t.goal),
            t.ratio,
            if t.met { "good" } else { "bad" },
            if t.met { "met" } else { "not met" }
        );
    }
    h.push_str("</table>");
}

fn breakdown(h: &mut String, run: &Run) {
    let Some(b) = &run.breakdown else { return };
    let _ = write!(
        h,
        "<h3>One cold boot</h3><p class=\"note\">With both MD5s: {} in all, of which the module load (inflate, CRC32, MD5s, in \
         parallel) {} and the partition scan and FAT reads {}. Without MD5s: {} ({} load, {} scan and reads). Below, each \
         step timed alone on one core.</p>",
        seconds(b.boot_with_md5),
        seconds(b.load_with_md5),
        seconds((b.boot_with_md5 - b.load_with_md5).max(0.0)),
        seconds(b.boot_without_md5),
        seconds(b.load_without_md5),
        seconds((b.boot_without_md5 - b.load_without_md5).max(0.0)),
    );
    let total: f64 = b.modules.iter().map(|m| m.inflate + m.crc32 + m.md5).sum();
    let (inflate, crc, md5): (f64, f64, f64) =
        b.modules.iter().fold((0.0, 0.0, 0.0), |(a, c, m), x| (a + x.inflate, c + x.crc32, m + x.md5));
    let pct = |x: f64| if total > 0.0 { x / total * 100.0 } else { 0.0 };
    let _ = write!(
        h,
        "<p id=\"split\">CPU work {}: inflate {:.0}%, CRC32 {:.0}%, MD5s {:.0}%.</p>",
        seconds(total),
        pct(inflate),
        pct(crc),
        pct(md5)
    );
    h.push_str(
        "<table id=\"breakdown\"><tr><th>module</th><th>file bytes</th><th>bytes</th><th>inflate MB/s</th><th>inflate</th>\
         <th>CRC32</th><th>MD5s</th><th>share of the work</th></tr>",
    );
    for m in &b.modules {
        let work = m.inflate + m.crc32 + m.md5;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span class=\"bar\" style=\"width:{:.0}px\"></span> {:.1}%</td></tr>",
            esc(&m.name),
            m.compressed,
            m.size,
            if m.inflate > 0.0 { format!("{:.0}", m.size as f64 / m.inflate / 1e6) } else { String::new() },
            seconds(m.inflate),
            seconds(m.crc32),
            seconds(m.md5),
            pct(work) * 2.0,
            pct(work)
        );
    }
    h.push_str("</table>");
}

fn tools(h: &mut String, run: &Run) {
    h.push_str("<h3>Tools</h3><table id=\"tools\"><tr><th>tool</th><th>version</th><th>path</th></tr>");
    for t in &run.tools {
        match &t.path {
            Some(p) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&t.name),
                    esc(t.version.as_deref().unwrap_or("")),
                    esc(p)
                );
            }
            None => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"missing\" colspan=\"2\">missing: {} (scripts/install-bench-peers.sh)</td></tr>",
                    esc(&t.name),
                    esc(&t.install)
                );
            }
        }
    }
    h.push_str("</table>");
}

fn trends(h: &mut String, runs: &[&Run]) {
    h.push_str(
        "<h3>Trends</h3><p class=\"note\">Median per run (line), the run's min–max (band); a red dot is a regression, \
                a green one an improvement: a change from the run before larger than the wider of the two runs' ranges \
                (and than 2%).</p><div class=\"charts\">",
    );
    let Some(latest) = runs.last() else { return };
    for f in &latest.figures {
        let mut points: Vec<Point> = Vec::new();
        let mut before: Option<Spread> = None;
        for run in runs {
            let Some(s) = run.figures.iter().find(|g| g.id == f.id).and_then(|g| g.spread()) else { continue };
            let change = before.map_or(Change::Within, |b| classify(&b, &s));
            points.push(Point { label: short(run.commit.as_deref()), spread: s, change });
            before = Some(s);
        }
        if points.is_empty() {
            continue;
        }
        let unit = if f.per == "run" { "s".to_owned() } else { format!("s/{}", f.per) };
        match trend_svg(&f.id, &unit, &points) {
            Ok(svg) => {
                let _ = write!(h, "<figure>{svg}</figure>");
            }
            Err(e) => {
                let _ = write!(h, "<p class=\"missing\">{}: chart failed: {}</p>", esc(&f.id), esc(&e));
            }
        }
    }
    h.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::tests::sample_run;

    #[test]
    fn machines_are_kept_apart_and_regressions_flagged() {
        let a = sample_run("aaaaaaaa1", &[1.0, 1.01]);
        let b = sample_run("bbbbbbbb2", &[1.5, 1.51]);
        let mut other = sample_run("cccccccc3", &[0.2]);
        other.machine.cpu = "Intel Xeon".into();
        let html = page(&[a, other, b], "h.jsonl");
        assert_eq!(html.matches("<section class=\"machine\"").count(), 2);
        assert!(html.contains("Intel Xeon × 2 cores") && html.contains("AMD EPYC × 2 cores"));
        // The EPYC's latest run is b, slower than a by more than the band.
        let epyc =
            &html[html.find("AMD EPYC × 2 cores</h2>").unwrap()..html.find("Intel Xeon × 2 cores</h2>").unwrap()];
        assert!(epyc.contains("regression (+"), "{epyc}");
        assert!(epyc.contains("bbbbbbbb") && !epyc.contains("cccccccc"));
        assert!(epyc.contains("missing: pigz is not installed"));
        // Self-contained: nothing is fetched (the only URL is SVG's namespace).
        assert!(!html.contains(" src=") && !html.contains("<link") && !html.contains("url("), "self-contained");
        assert!(html.replace("http://www.w3.org/2000/svg", "").find("http").is_none());
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
