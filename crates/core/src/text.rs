//! Text that people read: which characters may change what they see, and
//! how to show any text so that it cannot.
//!
//! An entry's name, labels and media type end up in terminals and in the
//! browser. Some characters rewrite what is shown there instead of being
//! shown: control characters (a terminal's escape sequences), format
//! characters (a right-to-left override, U+202E, shows
//! `evil\u{202e}fdp.exe` as `evilexe.pdf`; zero-width ones hide that two
//! names differ) and the line and paragraph separators. [`forbidden`] is
//! the one rule that names them; the vault refuses them in new statements.
//! [`escape`] shows text with them, and anything else that is not plainly
//! printable, as escapes.
//!
//! The entry codec does not apply this rule (it refuses only control
//! characters, `docs/entry-format.md`): entries logged before the rule
//! still decode, and are shown escaped.

use std::borrow::Cow;
use std::fmt;

/// Why a character may not be in text shown to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    /// Unicode general category Cc (U+0000–U+001F, U+007F–U+009F).
    Control,
    /// Unicode general category Cf: invisible characters that change the
    /// text around them (bidirectional overrides, zero-width characters).
    Format,
    /// Unicode general categories Zl and Zp (U+2028, U+2029).
    Separator,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::Control => "a control character",
            Forbidden::Format => "a format character",
            Forbidden::Separator => "a line or paragraph separator",
        })
    }
}

/// The code points of general category Cf, as of Unicode 16.0.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// The rule: why `c` may not be in text shown to people, or `None` if it
/// may.
pub fn forbidden(c: char) -> Option<Forbidden> {
    if c.is_control() {
        Some(Forbidden::Control)
    } else if matches!(c, '\u{2028}' | '\u{2029}') {
        Some(Forbidden::Separator)
    } else if FORMAT
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
    {
        Some(Forbidden::Format)
    } else {
        None
    }
}

/// The first character of `text` that [`forbidden`] refuses, and why.
pub fn find_forbidden(text: &str) -> Option<(char, Forbidden)> {
    // Most text is ASCII, where only the controls are refused: a byte scan
    // answers it without walking the tables.
    if text.is_ascii() {
        return text
            .bytes()
            .find(u8::is_ascii_control)
            .map(|b| (char::from(b), Forbidden::Control));
    }
    text.chars().find_map(|c| forbidden(c).map(|why| (c, why)))
}

/// `text` as it may be shown: every character [`forbidden`] names, and
/// every other one Rust's Unicode tables do not call printable (unassigned
/// and private-use code points, spaces other than U+0020), written as a
/// Rust escape such as `\u{202e}`, and a backslash as `\\` so that an
/// escape cannot be faked. A combining mark is escaped only where it
/// starts the text, since it would join whatever precedes it there.
pub fn escape(text: &str) -> Cow<'_, str> {
    let plain = |(i, c): (usize, char)| c != '\\' && forbidden(c).is_none() && printable(c, i == 0);
    if text.char_indices().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for (i, c) in text.char_indices() {
        if c == '\\' {
            shown.push_str("\\\\");
        } else if plain((i, c)) {
            shown.push(c);
        } else {
            shown.extend(c.escape_unicode());
        }
    }
    Cow::Owned(shown)
}

/// Whether Rust's `escape_debug` leaves `c` as it is: it escapes what its
/// Unicode tables do not call printable, and combining marks only at the
/// start of a string. (It also escapes quotes and a backslash; quotes are
/// printable, and the caller escapes backslashes itself.)
fn printable(c: char, first: bool) -> bool {
    let mut probe = String::with_capacity(8);
    if !first {
        probe.push('a');
    }
    probe.push(c);
    probe.escape_debug().last() == Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_controls_formats_and_separators() {
        for (c, why) in [
            ('\u{0}', Forbidden::Control),
            ('\u{1b}', Forbidden::Control),
            ('\u{85}', Forbidden::Control),
            ('\u{ad}', Forbidden::Format),
            ('\u{61c}', Forbidden::Format),
            ('\u{200b}', Forbidden::Format),
            ('\u{200f}', Forbidden::Format),
            ('\u{202e}', Forbidden::Format),
            ('\u{2066}', Forbidden::Format),
            ('\u{feff}', Forbidden::Format),
            ('\u{1343f}', Forbidden::Format),
            ('\u{e0041}', Forbidden::Format),
            ('\u{2028}', Forbidden::Separator),
            ('\u{2029}', Forbidden::Separator),
        ] {
            assert_eq!(forbidden(c), Some(why), "U+{:04X}", c as u32);
        }
        for c in [
            'a', ' ', 'é', '\u{301}', 'ß', '\u{a0}', '€', '日', '😀', '\u{2065}',
        ] {
            assert_eq!(forbidden(c), None, "U+{:04X}", c as u32);
        }
        assert_eq!(
            find_forbidden("report\u{202e}fdp.exe"),
            Some(('\u{202e}', Forbidden::Format))
        );
        assert_eq!(find_forbidden("rapport d’incident"), None);
    }

    #[test]
    fn ascii_text_is_judged_by_the_same_rule() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            let text = format!("ab{c}cd{c}");
            let want = forbidden(c).map(|why| (c, why));
            assert_eq!(find_forbidden(&text), want, "U+{b:04X}");
        }
        // Past the first non-ASCII character, the tables decide.
        assert_eq!(
            find_forbidden("caf\u{e9}\u{7f}"),
            Some(('\u{7f}', Forbidden::Control))
        );
        assert_eq!(
            find_forbidden("a\u{202e}\u{1}"),
            Some(('\u{202e}', Forbidden::Format))
        );
    }

    /// Every format character is one Rust's own tables (Unicode
    /// `char::UNICODE_VERSION`) do not call printable: the list holds
    /// nothing that is not Cf.
    #[test]
    fn every_listed_format_character_is_unprintable_to_rust() {
        for &(first, last) in FORMAT {
            for c in first..=last {
                assert!(!printable(c, false), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn escaping_shows_what_would_hide_or_rewrite_text() {
        assert_eq!(escape("report.pdf"), Cow::Borrowed("report.pdf"));
        assert_eq!(escape("evil\u{202e}fdp.exe"), "evil\\u{202e}fdp.exe");
        assert_eq!(escape("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(escape("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(escape("no\u{a0}break"), "no\\u{a0}break");
        assert_eq!(escape("private\u{e000}"), "private\\u{e000}");
        // A backslash cannot pass for an escape.
        assert_eq!(escape("fake\\u{202e}"), "fake\\\\u{202e}");
        // Ordinary text in any script, with its combining marks, and
        // quotes, stays as it is.
        for plain in ["café", "cafe\u{301}", "日本語", "नमस्ते", "\"quoted\" 'too'"]
        {
            assert_eq!(escape(plain), Cow::Borrowed(plain));
        }
        assert_eq!(escape("\u{301}leading"), "\\u{301}leading");
    }
}
