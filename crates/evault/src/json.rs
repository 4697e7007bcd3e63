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

/// Compact JSON text (no whitespace between tokens) with every character
/// `evault_core::text::forbidden` names written as a `\u` escape: the same
/// JSON, safe to show. In compact JSON such characters can only be inside
/// strings, where the escape means the same character.
pub(crate) fn escape_forbidden(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if evault_core::text::forbidden(c).is_some() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
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

    #[test]
    fn forbidden_characters_become_json_escapes() {
        assert_eq!(
            super::escape_forbidden("{\"a\":\"x\u{202e}y\u{85}\u{e0001}\"}"),
            "{\"a\":\"x\\u202ey\\u0085\\udb40\\udc01\"}"
        );
        assert_eq!(super::escape_forbidden("[\"— ok\"]"), "[\"— ok\"]");
    }
}
