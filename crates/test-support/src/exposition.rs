//! Reading what `/metrics` serves: the Prometheus text format (version
//! 0.0.4), parsed strictly enough to catch what a scraper would refuse.

use std::collections::HashMap;

/// One sample line: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (a histogram's with its suffix).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// The samples of a scrape, in order. Panics, naming the line, on what a
/// scraper would refuse: every line not a comment is
/// `name{label="value",...} value`, names and label names are legal, and
/// every sample belongs to a family with a `# HELP` and a `# TYPE` (a
/// histogram's `_bucket`, `_sum` and `_count` to the histogram's).
pub fn parse(text: &str) -> Vec<Sample> {
    let mut helps = HashMap::new();
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the last line is ended"
    );
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    assert!(legal_name(name), "{line}");
                    assert!(
                        helps.insert(name.to_string(), help.to_string()).is_none(),
                        "HELP twice: {line}"
                    );
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(legal_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                _ => {}
            }
            continue;
        }
        samples.push(sample(line));
    }
    for s in &samples {
        let family =
            family_of(&s.name, &types).unwrap_or_else(|| panic!("{} has no # TYPE", s.name));
        assert!(helps.contains_key(family), "{family} has no # HELP");
    }
    samples
}

/// The family a sample belongs to: its own name, or a histogram's.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
    })
}

fn legal_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample(line: &str) -> Sample {
    let end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..end];
    assert!(legal_name(name), "{line}");
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inner.find("=\"").unwrap_or_else(|| panic!("label: {line}"));
            let key = &inner[..eq];
            assert!(legal_name(key) && !key.contains(':'), "label name: {line}");
            let mut value = String::new();
            let mut chars = inner[eq + 2..].char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => panic!("escape {other:?}: {line}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            };
            labels.push((key.to_string(), value));
            inner = &inner[close + 1..];
            inner = inner.strip_prefix(',').unwrap_or(inner);
        }
    }
    let mut words = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value: {line}"))
        .split(' ');
    let value = match words.next() {
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(v) => v.parse().unwrap_or_else(|_| panic!("value: {line}")),
        None => panic!("no value: {line}"),
    };
    // An optional timestamp, in milliseconds.
    if let Some(at) = words.next() {
        at.parse::<i64>()
            .unwrap_or_else(|_| panic!("timestamp: {line}"));
    }
    assert!(words.next().is_none(), "{line}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// The value of the sample `name` with exactly `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}
