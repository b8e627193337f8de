//! Ratios between the figures of one run, shared by the command's table
//! and the dashboard: each visorsim figure against every peer, each figure
//! against its limit (a cold boot against its [`Bound`], a figure with a
//! byte count against memcpy of as many bytes), a figure against its
//! `versus`, and the cold-boot targets of issue 11.

use super::record::{Figure, Kind, Run};

/// A figure's median, when measured.
pub fn median(run: &Run, id: &str) -> Option<f64> {
    run.figures.iter().find(|f| f.id == id).and_then(Figure::spread).map(|s| s.median)
}

/// Output bytes per second of a figure (median), when it has a byte count.
pub fn throughput(figure: &Figure) -> Option<f64> {
    Some(figure.bytes? as f64 / figure.spread()?.median)
}

/// `figure` against every peer: (peer id, peer median / figure median),
/// above 1 when the figure is faster. Only for visorsim figures over the
/// same bytes as the peers; missing peers are left out (the page lists them).
pub fn peer_ratios(run: &Run, figure: &Figure) -> Vec<(String, f64)> {
    let Some(own) = figure.spread() else { return Vec::new() };
    if figure.kind != Kind::Visorsim {
        return Vec::new();
    }
    run.figures
        .iter()
        .filter(|p| p.kind == Kind::Peer && p.bytes == figure.bytes)
        .filter_map(|p| Some((p.id.clone(), p.spread()?.median / own.median)))
        .collect()
}

/// `figure` against its limit: (what the limit is, figure median / limit
/// seconds), 1 at the limit, above it when slower.
pub fn limit_ratio(run: &Run, figure: &Figure) -> Option<(String, f64)> {
    let own = figure.spread()?.median;
    match figure.id.as_str() {
        "boot/cold" => run.bound.as_ref().map(|b| ("bound".to_owned(), own / b.with_md5)),
        "boot/cold_without_md5" => run.bound.as_ref().map(|b| ("bound".to_owned(), own / b.without_md5)),
        _ if figure.kind == Kind::Limit => None,
        _ => {
            let memcpy = run.figures.iter().find(|f| f.id == "limit/memcpy").and_then(throughput)?;
            Some(("memcpy".to_owned(), own / (figure.bytes? as f64 / memcpy)))
        }
    }
}

/// `figure` against its `versus`: versus median / figure median (above 1
/// when the figure is faster).
pub fn versus_ratio(run: &Run, figure: &Figure) -> Option<(String, f64)> {
    let other = figure.versus.as_deref()?;
    Some((other.to_owned(), median(run, other)? / figure.spread()?.median))
}

/// One of issue 11's cold-boot targets and where the run stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What is asked.
    pub goal: String,
    /// The measured ratio.
    pub ratio: f64,
    /// Whether it holds.
    pub met: bool,
}

/// The targets: the cold boot without MD5s at least 1.5× libdeflate-gunzip
/// and ahead of rapidgzip; with both MD5s within 1.15× of the bound.
/// A target whose figures are missing is left out.
pub fn targets(run: &Run) -> Vec<Target> {
    let mut out = Vec::new();
    let without = median(run, "boot/cold_without_md5");
    if let (Some(own), Some(peer)) = (without, median(run, "peer/libdeflate-gunzip")) {
        let ratio = peer / own;
        out.push(Target {
            goal: "cold boot without MD5s ≥ 1.5× libdeflate-gunzip".into(), ratio, met: ratio >= 1.5
        });
    }
    if let (Some(own), Some(peer)) = (without, median(run, "peer/rapidgzip")) {
        let ratio = peer / own;
        out.push(Target { goal: "cold boot without MD5s ahead of rapidgzip".into(), ratio, met: ratio > 1.0 });
    }
    if let (Some(own), Some(bound)) = (median(run, "boot/cold"), run.bound.as_ref()) {
        let ratio = own / bound.with_md5;
        out.push(Target { goal: "cold boot with MD5s ≤ 1.15× its bound".into(), ratio, met: ratio <= 1.15 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::sample_run;
    use super::super::record::{Bound, Figure, Kind};
    use super::*;

    fn peer(id: &str, secs: f64) -> Figure {
        Figure {
            id: id.into(),
            label: id.into(),
            kind: Kind::Peer,
            samples: vec![secs],
            per: "run".into(),
            bytes: Some(8_000_000),
            versus: None,
            missing: None,
        }
    }

    #[test]
    fn ratios_and_targets() {
        let mut run = sample_run("aaa", &[1.0]);
        let mut without = run.figures[0].clone();
        without.id = "boot/cold_without_md5".into();
        without.samples = vec![0.5];
        run.figures.push(without);
        run.figures.push(peer("peer/libdeflate-gunzip", 1.0));
        run.figures.push(peer("peer/rapidgzip", 0.6));
        let mut memcpy = peer("limit/memcpy", 0.001);
        memcpy.kind = Kind::Limit;
        run.figures.push(memcpy);
        run.bound = Some(Bound::new(0.5, 1.8, 0.8, 2));
        let cold = run.figures[0].clone();
        let ratios = peer_ratios(&run, &cold);
        assert_eq!(ratios, vec![("peer/libdeflate-gunzip".to_owned(), 1.0), ("peer/rapidgzip".to_owned(), 0.6)]);
        // 1.0 s against a bound of max(0.5, 1.8 / 2) = 0.9 s.
        let (what, r) = limit_ratio(&run, &cold).unwrap();
        assert_eq!(what, "bound");
        assert!((r - 1.0 / 0.9).abs() < 1e-12);
        // A peer against memcpy of its 8 MB at 8 GB/s (1 ms): 1000×.
        let (what, r) = limit_ratio(&run, &run.figures[3].clone()).unwrap();
        assert_eq!(what, "memcpy");
        assert!((r - 1000.0).abs() < 1e-6, "{r}");
        let t = targets(&run);
        assert_eq!(t.len(), 3);
        assert!(t[0].met && (t[0].ratio - 2.0).abs() < 1e-12, "{t:?}");
        assert!(t[1].met && (t[1].ratio - 1.2).abs() < 1e-12);
        // The bound without MD5s is 0.4 s; with them the boot is 1.11× the bound.
        assert!(t[2].met);
    }
}
