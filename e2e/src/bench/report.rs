//! Results: one [`Run`] per measured repetition, summarised as min/median in a Markdown
//! table next to the peer's, and written out raw as CSV.

use std::fmt::Write as _;

/// One measured repetition of one workload by one system.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The workload, e.g. `Kafka → file`.
    pub workload: String,
    /// The system measured, e.g. `Ferry` or `Kafka Connect`.
    pub system: String,
    /// Whether this system is the reference of its workload (the denominator of ratios).
    pub reference: bool,
    /// Repetition number, from 1.
    pub repetition: u32,
    /// Records delivered.
    pub records: u64,
    /// Seconds from the first to the last record delivered.
    pub seconds: f64,
    /// User + system CPU seconds of the process over its whole life (start-up included).
    pub cpu_seconds: f64,
    /// User + system CPU seconds between the first and the last record delivered, if
    /// measured (10 ms resolution).
    pub delivery_cpu_seconds: Option<f64>,
    /// Peak resident set size of the process, MiB.
    pub peak_rss_mib: f64,
    /// Seconds from process start to the first record delivered, if measured.
    pub first_record_seconds: Option<f64>,
    /// 1-minute load average of the machine when the run started.
    pub load_average: Option<f64>,
}

impl Run {
    /// Records per second between the first and the last record.
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Records per CPU second (whole-life CPU).
    pub fn records_per_cpu_second(&self) -> f64 {
        self.records as f64 / self.cpu_seconds.max(1e-9)
    }

    /// Records per CPU second spent between the first and the last record.
    pub fn records_per_delivery_cpu_second(&self) -> Option<f64> {
        self.delivery_cpu_seconds
            .map(|cpu| self.records as f64 / cpu.max(1e-9))
    }
}

/// Median of the values (the mean of the middle two for an even count), `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Smallest of the values, `None` if empty.
pub fn min(values: &[f64]) -> Option<f64> {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .min_by(f64::total_cmp)
}

/// The `p`-th percentile (0–100) by the nearest-rank method, `None` if empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// The columns of the table: name, how to read a run, digits after the point.
type Metric = (&'static str, fn(&Run) -> Option<f64>, usize);

const METRICS: [Metric; 6] = [
    ("records/s", |r| Some(r.records_per_second()), 0),
    ("CPU s", |r| Some(r.cpu_seconds), 2),
    ("records/CPU s", |r| Some(r.records_per_cpu_second()), 0),
    (
        "records/CPU s, delivery only",
        Run::records_per_delivery_cpu_second,
        0,
    ),
    ("peak RSS MiB", |r| Some(r.peak_rss_mib), 1),
    ("first record s", |r| r.first_record_seconds, 2),
];

fn number(value: f64, digits: usize) -> String {
    let text = format!("{value:.digits$}");
    // Thousands separators on the integer part, for records/s.
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A Markdown table: per workload, one row per system with `median (min)` of each metric
/// over its repetitions, then one row per non-reference system with the ratio of its medians
/// to the reference's. Workloads and systems keep the order they first appear in.
pub fn markdown_table(runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | system | runs | records | {} |",
        METRICS.iter().map(|m| m.0).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|---|---:|---:|{}", "---:|".repeat(METRICS.len()));
    for workload in ordered(runs.iter().map(|r| r.workload.as_str())) {
        let of_workload: Vec<&Run> = runs.iter().filter(|r| r.workload == workload).collect();
        let systems = ordered(of_workload.iter().map(|r| r.system.as_str()));
        let medians = |system: &str| -> Vec<Option<f64>> {
            METRICS
                .iter()
                .map(|(_, get, _)| {
                    let v: Vec<f64> = of_workload
                        .iter()
                        .filter(|r| r.system == system)
                        .filter_map(|r| get(r))
                        .collect();
                    median(&v)
                })
                .collect()
        };
        for system in &systems {
            let mine: Vec<&&Run> = of_workload.iter().filter(|r| r.system == *system).collect();
            let cells: Vec<String> = METRICS
                .iter()
                .map(|(_, get, digits)| {
                    let v: Vec<f64> = mine.iter().filter_map(|r| get(r)).collect();
                    match (median(&v), min(&v)) {
                        (Some(m), Some(lo)) => {
                            format!("{} ({})", number(m, *digits), number(lo, *digits))
                        }
                        _ => "–".to_string(),
                    }
                })
                .collect();
            let records = mine.first().map(|r| number(r.records as f64, 0));
            let _ = writeln!(
                out,
                "| {workload} | {system} | {} | {} | {} |",
                mine.len(),
                records.unwrap_or_default(),
                cells.join(" | ")
            );
        }
        let Some(reference) = of_workload
            .iter()
            .find(|r| r.reference)
            .map(|r| r.system.clone())
        else {
            continue;
        };
        let base = medians(&reference);
        for system in systems.iter().filter(|s| **s != reference) {
            let cells: Vec<String> = medians(system)
                .iter()
                .zip(&base)
                .map(|(m, b)| match (m, b) {
                    (Some(m), Some(b)) if *b != 0.0 => format!("**{:.2}×**", m / b),
                    _ => "–".to_string(),
                })
                .collect();
            let _ = writeln!(
                out,
                "| {workload} | {system} / {reference} | | | {} |",
                cells.join(" | ")
            );
        }
    }
    out
}

fn ordered<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for i in items {
        if !seen.contains(&i) {
            seen.push(i);
        }
    }
    seen
}

/// Header line of [`csv_line`].
pub const CSV_HEADER: &str = "started_at,workload,system,reference,repetition,records,seconds,records_per_second,cpu_seconds,records_per_cpu_second,delivery_cpu_seconds,peak_rss_mib,first_record_seconds,load_average";

/// One CSV line (without the line break) of a run that started at `started_at` (RFC 3339).
pub fn csv_line(started_at: &str, run: &Run) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let opt =
        |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{:.4},{:.1},{:.3},{:.1},{},{:.1},{},{}",
        started_at,
        quote(&run.workload),
        quote(&run.system),
        run.reference,
        run.repetition,
        run.records,
        run.seconds,
        run.records_per_second(),
        run.cpu_seconds,
        run.records_per_cpu_second(),
        opt(run.delivery_cpu_seconds, 2),
        run.peak_rss_mib,
        opt(run.first_record_seconds, 3),
        opt(run.load_average, 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(system: &str, reference: bool, rep: u32, seconds: f64, cpu: f64, rss: f64) -> Run {
        Run {
            workload: "Kafka → file".into(),
            system: system.into(),
            reference,
            repetition: rep,
            records: 1_000_000,
            seconds,
            cpu_seconds: cpu,
            delivery_cpu_seconds: Some(cpu / 2.0),
            peak_rss_mib: rss,
            first_record_seconds: Some(seconds / 10.0),
            load_average: Some(1.0),
        }
    }

    #[test]
    fn median_min_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(min(&[3.0, 1.0, f64::NAN]), Some(1.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(1234.5, 1), "1,234.5");
        assert_eq!(number(-1234.0, 0), "-1,234");
    }

    #[test]
    fn the_table_has_median_and_min_per_system_and_a_ratio_row() {
        let runs = vec![
            run("Ferry", false, 1, 2.0, 1.0, 40.0),
            run("Kafka Connect", true, 1, 10.0, 8.0, 600.0),
            run("Ferry", false, 2, 4.0, 3.0, 50.0),
            run("Kafka Connect", true, 2, 8.0, 6.0, 500.0),
            run("Ferry", false, 3, 5.0, 2.0, 45.0),
            run("Kafka Connect", true, 3, 12.0, 7.0, 550.0),
        ];
        let table = markdown_table(&runs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        // Ferry: seconds 2, 4, 5 → records/s 500k, 250k, 200k: median 250k, min 200k.
        assert!(
            lines[2].starts_with(
                "| Kafka → file | Ferry | 3 | 1,000,000 | 250,000 (200,000) | 2.00 (1.00) |"
            ),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("| Kafka Connect | 3 |"), "{}", lines[3]);
        // Records/s medians 250k / 100k = 2.5; CPU 2 / 7; RSS 45 / 550.
        assert!(
            lines[4].starts_with(
                "| Kafka → file | Ferry / Kafka Connect | | | **2.50×** | **0.29×** |"
            ),
            "{}",
            lines[4]
        );
        assert!(lines[4].contains("**0.08×**"), "{}", lines[4]);
        // Delivery CPU is half the whole-life CPU here: twice the records per CPU second.
        assert!(
            lines[2].contains("| 500,000 (333,333) | 1,000,000 (666,667) |"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn a_workload_without_a_reference_has_no_ratio_row_and_missing_values_show_a_dash() {
        let mut r = run("Ferry", false, 1, 1.0, 1.0, 10.0);
        r.first_record_seconds = None;
        let table = markdown_table(&[r]);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(
            table.lines().nth(2).is_some_and(|l| l.ends_with("| – |")),
            "{table}"
        );
    }

    #[test]
    fn csv_lines_quote_text_and_leave_missing_values_empty() {
        let mut r = run("Kafka \"Connect\"", true, 2, 4.0, 2.0, 512.0);
        r.first_record_seconds = None;
        let line = csv_line("2026-11-22T06:00:00Z", &r);
        assert_eq!(
            line,
            "2026-11-22T06:00:00Z,\"Kafka → file\",\"Kafka \"\"Connect\"\"\",true,2,1000000,4.0000,250000.0,2.000,500000.0,1.00,512.0,,1.00"
        );
        assert_eq!(line.split(',').count(), CSV_HEADER.split(',').count());
    }
}
