//! What libyaml decides about a scalar before writing it: which styles its
//! characters allow, and whether PyYAML's resolver would read the plain
//! text back as another type.

use std::sync::LazyLock;

use regex::Regex;

/// The styles a scalar's text allows (libyaml's scalar analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Analysis {
    /// Holds a line break.
    pub(super) multiline: bool,
    pub(super) flow_plain: bool,
    pub(super) block_plain: bool,
    pub(super) single_quoted: bool,
    pub(super) block: bool,
}

/// libyaml's line breaks: CR, LF, NEL, LS, PS.
pub(super) fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// A blank, a break, or the end of the text (libyaml's `IS_BLANKZ`; a NUL
/// counts as the end, as in C).
pub(super) fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || c == '\0' || is_break(c),
    }
}

/// libyaml's `IS_PRINTABLE`: LF, ASCII 0x20–0x7E, U+00A0–U+D7FF and
/// U+E000–U+FFFD but U+FEFF. Nothing beyond the BMP.
pub(super) fn is_printable(c: char) -> bool {
    let code = u32::from(c);
    code == 0x0A
        || (0x20..=0x7E).contains(&code)
        || (0xA0..=0xD7FF).contains(&code)
        || ((0xE000..=0xFFFD).contains(&code) && code != 0xFEFF)
}

/// Which styles libyaml allows for `text` (`allow_unicode` on).
pub(super) fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain: false,
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let last = chars.len() - 1;

    let mut block_indicators = text.starts_with("---") || text.starts_with("...");
    let mut flow_indicators = block_indicators;
    let mut line_breaks = false;
    let mut special_characters = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = is_blankz(chars.get(1).copied());

    for (i, &c) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                flow_indicators = true;
                block_indicators = true;
            }
            if c == '?' || c == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if c == '-' && followed_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        } else {
            if ",?[]{}".contains(c) {
                flow_indicators = true;
            }
            if c == ':' {
                flow_indicators = true;
                if followed_by_whitespace {
                    block_indicators = true;
                }
            }
            if c == '#' && preceded_by_whitespace {
                flow_indicators = true;
                block_indicators = true;
            }
        }

        if !is_printable(c) {
            special_characters = true;
        }
        if is_break(c) {
            line_breaks = true;
        }

        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }

        preceded_by_whitespace = is_blankz(Some(c));
        if i < last {
            followed_by_whitespace = is_blankz(chars.get(i + 2).copied());
        }
    }

    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain: true,
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.flow_plain = false;
        a.block_plain = false;
        a.single_quoted = false;
    }
    if space_break || special_characters {
        a.flow_plain = false;
        a.block_plain = false;
        a.single_quoted = false;
        a.block = false;
    }
    if line_breaks {
        a.flow_plain = false;
        a.block_plain = false;
    }
    if flow_indicators {
        a.flow_plain = false;
    }
    if block_indicators {
        a.block_plain = false;
    }
    a
}

/// PyYAML's implicit resolvers (YAML 1.1): bool, float, int, merge, null,
/// timestamp, value and yaml, all anchored.
static IMPLICIT: LazyLock<Regex> = LazyLock::new(|| {
    let patterns = [
        // bool
        r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        // float
        r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"[-+]?\.(?:inf|Inf|INF)",
        r"\.(?:nan|NaN|NAN)",
        // int
        r"[-+]?0b[0-1_]+",
        r"[-+]?0[0-7_]+",
        r"[-+]?(?:0|[1-9][0-9_]*)",
        r"[-+]?0x[0-9a-fA-F_]+",
        r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
        // merge, null, value, yaml
        r"<<",
        r"~|null|Null|NULL|",
        r"=",
        r"!|&|\*",
        // timestamp
        r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
    ];
    let pattern = format!("^(?:{})$", patterns.join("|"));
    #[allow(clippy::expect_used)] // a constant pattern, covered by the tests below
    Regex::new(&pattern).expect("the resolver pattern is valid")
});

/// Whether PyYAML would read `text`, written plain, as something other than
/// a string. Python's `$` also matches before one final newline.
pub(super) fn resolves_to_other_type(text: &str) -> bool {
    IMPLICIT.is_match(text)
        || text
            .strip_suffix('\n')
            .is_some_and(|rest| IMPLICIT.is_match(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_matches_yaml_1_1_types() {
        for other in [
            "yes",
            "OFF",
            "1.5",
            "1_000",
            "0x1F",
            "012",
            "-5",
            "1:30",
            ".inf",
            ".NaN",
            "",
            "~",
            "null",
            "<<",
            "=",
            "2024-01-01",
            "2024-01-01 10:00:00",
            "1.0e+3",
        ] {
            assert!(resolves_to_other_type(other), "{other:?}");
        }
        for text in ["1e3", "yess", "3007.8.1", "web1", "0b2", "-", "2024-1-1"] {
            assert!(!resolves_to_other_type(text), "{text:?}");
        }
    }

    #[test]
    fn analysis_follows_libyaml() {
        let plain = analyze("a:b");
        assert!(plain.block_plain && !plain.flow_plain);
        assert!(!analyze("a: b").block_plain);
        assert!(!analyze("- x").block_plain);
        assert!(analyze("-x").block_plain);
        let tab = analyze("a\tb");
        assert!(!tab.single_quoted && !tab.block_plain);
        let multi = analyze("a\nb");
        assert!(multi.multiline && multi.single_quoted && !multi.block_plain);
        assert!(!analyze("a \nb").single_quoted);
        assert!(!analyze("ok \u{1F600}").single_quoted);
    }
}
