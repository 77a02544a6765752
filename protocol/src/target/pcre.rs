//! Python `re.match` on top of the `regex` crate.
//!
//! Salt's `pcre` and `E@` targets call `re.match(pattern, minion_id)`: the
//! match is anchored at the start of the id but not at its end. The pattern
//! is wrapped as `^(?:…)` for that. A few spellings Python accepts and the
//! `regex` crate reads differently are rewritten first: `\Z` (end of text,
//! `\z` here), `{,n}` (`{0,n}` here) and a `{` that opens no repetition
//! (a literal in Python). Features the `regex` crate lacks (backreferences,
//! look-around) are reported as [`TargetError::InvalidRegex`].

use regex::Regex;

use super::TargetError;

/// A compiled Python-flavoured pattern, anchored at the start.
#[derive(Debug, Clone)]
pub(crate) struct Pcre {
    regex: Regex,
}

impl Pcre {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`TargetError::InvalidRegex`] if it does not compile.
    pub(crate) fn new(pattern: &str) -> Result<Pcre, TargetError> {
        let translated = translate(pattern);
        match Regex::new(&format!("^(?:{translated})")) {
            Ok(regex) => Ok(Pcre { regex }),
            Err(anchored) => {
                // Report the error against the pattern as the user wrote it
                // when that shows it; the wrapper can only obscure it.
                let reason = match Regex::new(&translated) {
                    Err(plain) => plain.to_string(),
                    Ok(_) => anchored.to_string(),
                };
                Err(TargetError::InvalidRegex {
                    pattern: pattern.to_owned(),
                    reason,
                })
            }
        }
    }

    /// Whether the pattern matches at the start of `text` (`re.match`).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pcre {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str()
    }
}

/// Rewrites the Python spellings the `regex` crate reads differently.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.char_indices().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some((at, c)) = chars.next() {
        let first_in_class = std::mem::take(&mut class_start);
        match c {
            '\\' => match chars.next() {
                Some((_, 'Z')) if !in_class => out.push_str("\\z"),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if let Some(&(_, '^')) = chars.peek() {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if in_class => out.push_str("\\["),
            ']' if in_class && !first_in_class => {
                in_class = false;
                out.push(']');
            }
            '{' if !in_class => {
                let rest = pattern.get(at + 1..).unwrap_or_default();
                match repetition(rest) {
                    Some((len, spelled)) => {
                        out.push_str(&spelled);
                        for _ in 0..len {
                            chars.next();
                        }
                    }
                    None => out.push_str("\\{"),
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// If `rest` (the text after a `{`) is a repetition Python accepts
/// (`n}`, `n,}`, `n,m}`, `,m}`), its length in characters and its spelling
/// for the `regex` crate (starting with `{`).
fn repetition(rest: &str) -> Option<(usize, String)> {
    let close = rest.find('}')?;
    let body = rest.get(..close)?;
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none_or(str::is_empty)) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let spelled = match hi {
        Some(hi) => format!("{{{lo},{hi}}}"),
        None => format!("{{{lo}}}"),
    };
    Some((body.chars().count() + 1, spelled))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pcre::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn anchored_at_start_only() {
        assert!(m("web", "web01"));
        assert!(!m("eb", "web01"));
        assert!(m(".*eb", "web01"));
        assert!(m("web\\d+$", "web01"));
        assert!(!m("web\\d+\\Z", "web01x"));
        assert!(m("a|b", "bc"), "alternation stays inside the anchor");
    }

    #[test]
    fn python_spellings() {
        assert!(m("a{,2}b", "aab"));
        assert!(m("a{b", "a{b"));
        assert!(m("a{2}", "aa"));
        assert!(m("[{]x", "{x"));
        assert!(m("[]a]", "]"));
        assert!(m("(?i)WEB", "web"));
    }

    #[test]
    fn invalid_patterns_are_typed_errors() {
        for bad in ["(", "web(", "a\\", "(?<=a)b", "(a)\\1"] {
            assert!(
                matches!(Pcre::new(bad), Err(TargetError::InvalidRegex { .. })),
                "{bad}"
            );
        }
    }
}
