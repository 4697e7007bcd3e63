//! The little JSON the commands print for scripts.

/// `text` as a JSON string literal.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(
            super::string("a\"b\\c\nd\u{1b}"),
            "\"a\\\"b\\\\c\\nd\\u001b\""
        );
        assert_eq!(super::string("— ok"), "\"— ok\"");
    }
}
