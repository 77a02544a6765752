//! Python's `shlex.split(s)` in POSIX mode: how `cmd.run` turns a command
//! into an argument vector when it runs without a shell (Salt's default).

/// Why a command line could not be split (Python raises `ValueError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SplitError {
    /// A quote was opened and never closed.
    #[error("No closing quotation")]
    NoClosingQuotation,
    /// The text ends with a lone backslash.
    #[error("No escaped character")]
    NoEscapedCharacter,
}

/// Splits like `shlex.split(s)`: whitespace separates words; `'…'` is
/// literal; inside `"…"` a backslash only escapes `"` and `\`; outside
/// quotes a backslash escapes any character; quoted parts join the word
/// around them, and `''` is an empty word.
pub(crate) fn split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::NoClosingQuotation),
                        Some('\'') => break,
                        Some(q) => word.push(q),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::NoClosingQuotation),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err(SplitError::NoClosingQuotation),
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                        },
                        Some(q) => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    None => return Err(SplitError::NoEscapedCharacter),
                    Some(e) => word.push(e),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Vec<String> {
        split(text).unwrap()
    }

    #[test]
    fn splits_like_posix_shlex() {
        assert_eq!(s("echo hi  there"), ["echo", "hi", "there"]);
        assert_eq!(s("echo 'a b' \"c d\""), ["echo", "a b", "c d"]);
        assert_eq!(s("a'b c'd"), ["ab cd"]);
        assert_eq!(s("echo '' x"), ["echo", "", "x"]);
        assert_eq!(s(r#"echo "a\"b\\c\d""#), ["echo", r#"a"b\c\d"#]);
        assert_eq!(s(r"echo a\ b"), ["echo", "a b"]);
        assert_eq!(
            s("echo out; echo err >&2"),
            ["echo", "out;", "echo", "err", ">&2"]
        );
        assert!(s("   ").is_empty());
        assert_eq!(split("echo 'x"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("echo x\\"), Err(SplitError::NoEscapedCharacter));
    }
}
